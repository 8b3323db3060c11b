/*
 * pshared: the mutex of memory that the master maps before it forks and its children
 * share (the login limits, the node's object-write log): process-shared, and robust, so a
 * process killed while holding it does not stop the others.
 */
#ifndef OGD_UTIL_PSHARED_H
#define OGD_UTIL_PSHARED_H

#include <pthread.h>

/* Initialises m (in shared memory). 0 or an errno. */
int pshared_mutex_init(pthread_mutex_t *m);
/* Locks m; when its holder died, takes it over as it is (callers keep what they protect
 * valid at every step, so a half-done update is still a valid state). */
void pshared_mutex_lock(pthread_mutex_t *m);

#endif
