/*
 * prodcons.c -- a NetBSD-style producer/consumer on _lwp_park / _lwp_unpark.
 *
 * Two LWPs share a ring buffer. Whoever must wait announces it in a flag,
 * re-checks the condition and parks; the other side, after changing the
 * buffer, unparks it if the flag is set. The unpark token makes this race
 * free: an unpark that arrives before the park makes the park return EALREADY
 * at once, so a wakeup is never lost (libpthread's condition variables work
 * the same way).
 *
 *   usage: lwp_prodcons [items]      (daemon endpoint from $LWPD_ENDPOINT)
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <lwpd/lwp.h>

#define RING 16
#define STACK_SIZE (64 * 1024)

static int ring[RING];
static atomic_uint head; /* next slot to consume */
static atomic_uint tail; /* next slot to fill */
static atomic_int producer_waiting, consumer_waiting;
static lwpid_t producer_lid, consumer_lid;
static long items = 10000;
static long long consumed_sum;

/* Park until `ready()` holds; `flag` tells the other side to unpark us. */
static void wait_until(int (*ready)(void), atomic_int* flag, const void* hint) {
  while (!ready()) {
    atomic_store(flag, 1);
    if (!ready()) {
      if (_lwp_park(CLOCK_MONOTONIC, 0, NULL, 0, hint, NULL) == -1 && errno != EALREADY &&
          errno != EINTR) {
        perror("_lwp_park");
        exit(1);
      }
    }
    atomic_store(flag, 0);
  }
}

static void wake(atomic_int* flag, lwpid_t lid, const void* hint) {
  if (atomic_load(flag) && _lwp_unpark(lid, hint) == -1 && errno != ESRCH) {
    perror("_lwp_unpark");
    exit(1);
  }
}

static int not_full(void) { return atomic_load(&tail) - atomic_load(&head) < RING; }
static int not_empty(void) { return atomic_load(&tail) != atomic_load(&head); }

static void producer(void* arg) {
  (void)arg;
  for (long i = 1; i <= items; i++) {
    wait_until(not_full, &producer_waiting, &tail);
    ring[atomic_load(&tail) % RING] = (int)i;
    atomic_fetch_add(&tail, 1);
    wake(&consumer_waiting, consumer_lid, &head);
  }
}

static void consumer(void* arg) {
  (void)arg;
  for (long i = 1; i <= items; i++) {
    wait_until(not_empty, &consumer_waiting, &head);
    consumed_sum += ring[atomic_load(&head) % RING];
    atomic_fetch_add(&head, 1);
    wake(&producer_waiting, producer_lid, &tail);
  }
}

/* The LWPs' stacks, freed once both have been waited for. */
static char* stacks[2];
static int nstacks;

static lwpid_t spawn(void (*fn)(void*), unsigned long flags) {
  ucontext_t uc;
  char* stack = malloc(STACK_SIZE);
  lwpid_t lid;
  if (stack == NULL) exit(1);
  stacks[nstacks++] = stack;
  _lwp_makecontext(&uc, fn, NULL, NULL, stack, STACK_SIZE);
  if (_lwp_create(&uc, flags, &lid) == -1) {
    perror("_lwp_create");
    exit(1);
  }
  return lid;
}

int main(int argc, char** argv) {
  if (argc > 1) items = atol(argv[1]);
  if (lwpd_attach(NULL) == -1) {
    perror("lwpd_attach");
    return 1;
  }
  /* Both start suspended so that each knows the other's LID before running. */
  consumer_lid = spawn(consumer, LWP_SUSPENDED);
  producer_lid = spawn(producer, LWP_SUSPENDED);
  _lwp_continue(consumer_lid);
  _lwp_continue(producer_lid);

  for (int i = 0; i < 2; i++) {
    lwpid_t done;
    if (_lwp_wait(0, &done) == -1) {
      perror("_lwp_wait");
      return 1;
    }
  }
  for (int i = 0; i < nstacks; i++) free(stacks[i]); /* both LWPs are gone */
  long long expect = (long long)items * (items + 1) / 2;
  printf("pid %d: %ld items, sum %lld (expected %lld)\n", (int)lwpd_getpid(), items, consumed_sum,
         expect);
  if (lwpd_detach() == -1) perror("lwpd_detach");
  return consumed_sum == expect ? 0 : 1;
}
