/* SPDX-License-Identifier: MIT */
/*
 * Thin platform layer: the only place that touches pthreads and the OS
 * clock directly.  Mutex and condition-variable failures are programming
 * errors (EINVAL, EDEADLK) and abort; everything that can fail at run time
 * (thread creation) returns an error code.
 */
#ifndef NTI_PLATFORM_H
#define NTI_PLATFORM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    pthread_mutex_t m;
} nti_mtx;
#define NTI_MTX_INITIALIZER { PTHREAD_MUTEX_INITIALIZER }
typedef struct {
    pthread_cond_t c;
} nti_cv;
typedef struct {
    pthread_rwlock_t l;
} nti_rwlock;
typedef struct {
    pthread_t t;
} nti_thr;

void nti_mtx_init(nti_mtx *m);
void nti_mtx_fini(nti_mtx *m);
void nti_mtx_lock(nti_mtx *m);
void nti_mtx_unlock(nti_mtx *m);

/* Condition variables use CLOCK_MONOTONIC, like nti_clock_ms(). */
void nti_cv_init(nti_cv *c);
void nti_cv_fini(nti_cv *c);
void nti_cv_wait(nti_cv *c, nti_mtx *m);
/* Waits until the monotonic time deadline_ms; returns false once it has
 * passed.  Spurious wake-ups return true: always loop over a predicate. */
bool nti_cv_wait_until(nti_cv *c, nti_mtx *m, uint64_t deadline_ms);
void nti_cv_signal(nti_cv *c);
void nti_cv_broadcast(nti_cv *c);

void nti_rwlock_init(nti_rwlock *l);
void nti_rwlock_fini(nti_rwlock *l);
void nti_rwlock_rdlock(nti_rwlock *l);
void nti_rwlock_wrlock(nti_rwlock *l);
void nti_rwlock_unlock(nti_rwlock *l);

/* Returns NT_OK or NT_ENOMEM. */
int nti_thr_create(nti_thr *t, void (*fn)(void *), void *arg);
void nti_thr_join(nti_thr *t);
/* Lets the thread run to its end unjoined. */
void nti_thr_detach(nti_thr *t);
void nti_thr_setname(const char *name);

/* Monotonic milliseconds / microseconds since an arbitrary origin. */
uint64_t nti_clock_ms(void);
uint64_t nti_clock_us(void);
/* Deadline for a timeout in ms; < 0 gives UINT64_MAX (never). */
uint64_t nti_deadline(int timeout_ms);

unsigned nti_ncpu(void);

#endif
