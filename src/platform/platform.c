/* SPDX-License-Identifier: MIT */
/*
 * POSIX implementation of the platform layer (see platform.h).
 */
#include "platform.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notifier/notifier.h"

static void
check(int rv, const char *what)
{
    if (rv != 0) {
        fprintf(stderr, "notifier: %s failed: %s\n", what, strerror(rv));
        abort();
    }
}

void
nti_mtx_init(nti_mtx *m)
{
    check(pthread_mutex_init(&m->m, NULL), "pthread_mutex_init");
}

void
nti_mtx_fini(nti_mtx *m)
{
    check(pthread_mutex_destroy(&m->m), "pthread_mutex_destroy");
}

void
nti_mtx_lock(nti_mtx *m)
{
    check(pthread_mutex_lock(&m->m), "pthread_mutex_lock");
}

void
nti_mtx_unlock(nti_mtx *m)
{
    check(pthread_mutex_unlock(&m->m), "pthread_mutex_unlock");
}

void
nti_cv_init(nti_cv *c)
{
    pthread_condattr_t a;
    check(pthread_condattr_init(&a), "pthread_condattr_init");
    check(pthread_condattr_setclock(&a, CLOCK_MONOTONIC),
          "pthread_condattr_setclock");
    check(pthread_cond_init(&c->c, &a), "pthread_cond_init");
    pthread_condattr_destroy(&a);
}

void
nti_cv_fini(nti_cv *c)
{
    check(pthread_cond_destroy(&c->c), "pthread_cond_destroy");
}

void
nti_cv_wait(nti_cv *c, nti_mtx *m)
{
    check(pthread_cond_wait(&c->c, &m->m), "pthread_cond_wait");
}

bool
nti_cv_wait_until(nti_cv *c, nti_mtx *m, uint64_t deadline_ms)
{
    if (deadline_ms == UINT64_MAX) {
        nti_cv_wait(c, m);
        return true;
    }
    if (nti_clock_ms() >= deadline_ms) {
        return false;
    }
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ms / 1000);
    ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
    int rv = pthread_cond_timedwait(&c->c, &m->m, &ts);
    if (rv == ETIMEDOUT) {
        return false;
    }
    check(rv, "pthread_cond_timedwait");
    return true;
}

void
nti_cv_signal(nti_cv *c)
{
    check(pthread_cond_signal(&c->c), "pthread_cond_signal");
}

void
nti_cv_broadcast(nti_cv *c)
{
    check(pthread_cond_broadcast(&c->c), "pthread_cond_broadcast");
}

void
nti_rwlock_init(nti_rwlock *l)
{
    check(pthread_rwlock_init(&l->l, NULL), "pthread_rwlock_init");
}

void
nti_rwlock_fini(nti_rwlock *l)
{
    check(pthread_rwlock_destroy(&l->l), "pthread_rwlock_destroy");
}

void
nti_rwlock_rdlock(nti_rwlock *l)
{
    check(pthread_rwlock_rdlock(&l->l), "pthread_rwlock_rdlock");
}

void
nti_rwlock_wrlock(nti_rwlock *l)
{
    check(pthread_rwlock_wrlock(&l->l), "pthread_rwlock_wrlock");
}

void
nti_rwlock_unlock(nti_rwlock *l)
{
    check(pthread_rwlock_unlock(&l->l), "pthread_rwlock_unlock");
}

struct thr_start {
    void (*fn)(void *);
    void *arg;
};

static void *
thr_main(void *p)
{
    struct thr_start s = *(struct thr_start *)p;
    free(p);
    s.fn(s.arg);
    return NULL;
}

int
nti_thr_create(nti_thr *t, void (*fn)(void *), void *arg)
{
    struct thr_start *s = malloc(sizeof(*s));
    if (s == NULL) {
        return NT_ENOMEM;
    }
    s->fn = fn;
    s->arg = arg;
    if (pthread_create(&t->t, NULL, thr_main, s) != 0) {
        free(s);
        return NT_ENOMEM;
    }
    return NT_OK;
}

void
nti_thr_join(nti_thr *t)
{
    check(pthread_join(t->t, NULL), "pthread_join");
}

void
nti_thr_detach(nti_thr *t)
{
    check(pthread_detach(t->t), "pthread_detach");
}

void
nti_thr_setname(const char *name)
{
#if defined(__linux__) && defined(__GLIBC__)
    extern int pthread_setname_np(pthread_t, const char *);
    char buf[16];
    snprintf(buf, sizeof(buf), "%s", name);
    (void)pthread_setname_np(pthread_self(), buf);
#else
    (void)name;
#endif
}

uint64_t
nti_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
nti_clock_ms(void)
{
    return nti_clock_us() / 1000u;
}

uint64_t
nti_deadline(int timeout_ms)
{
    if (timeout_ms < 0) {
        return UINT64_MAX;
    }
    return nti_clock_ms() + (uint64_t)timeout_ms;
}

unsigned
nti_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}
