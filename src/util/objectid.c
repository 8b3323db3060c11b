/*
 * objectid: MongoDB-layout ids; see objectid.h. The random part and the counter are
 * chosen by the first call in each process (a changed getpid() means a forked child):
 * one thread claims the choice by a compare-and-swap on `owner`, the others of that
 * process wait for it (a few microseconds). Owners of other processes, including one
 * that was choosing when the fork happened, are simply taken over, so nothing waits on a
 * thread that does not exist in this process.
 */
#include "util/objectid.h"

#include <sched.h>
#include <stddef.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* The process the random part was chosen by, shifted left by one; the low bit is set
 * while a thread of that process is choosing it. 0: not chosen yet. */
static _Atomic uint64_t owner;
static _Atomic uint64_t process_random; /* the 5 random bytes, in the low 40 bits */
static _Atomic uint32_t counter;        /* the next id's counter, in the low 24 bits */

/* The random part for this process, chosen now if this process has none yet. */
static uint64_t random_part(void)
{
    uint64_t mine = (uint64_t)getpid() << 1;
    for (;;) {
        uint64_t seen = atomic_load_explicit(&owner, memory_order_acquire);
        if (seen == mine)
            return atomic_load_explicit(&process_random, memory_order_relaxed);
        if (seen == (mine | 1)) {
            sched_yield(); /* another thread of this process is choosing */
            continue;
        }
        if (!atomic_compare_exchange_weak_explicit(&owner, &seen, mine | 1, memory_order_acquire,
                                                   memory_order_relaxed))
            continue;
        unsigned char b[8];
        randombytes_buf(b, sizeof(b));
        uint64_t r = 0;
        for (int i = 0; i < 5; i++)
            r = r << 8 | b[i];
        atomic_store_explicit(&process_random, r, memory_order_relaxed);
        atomic_store_explicit(&counter, (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7],
                              memory_order_relaxed);
        atomic_store_explicit(&owner, mine, memory_order_release);
        return r;
    }
}

void objectid_new(char out[OBJECTID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t r = random_part();
    uint32_t n = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    uint32_t t = (uint32_t)time(NULL);
    unsigned char b[12] = {
        (unsigned char)(t >> 24), (unsigned char)(t >> 16), (unsigned char)(t >> 8),
        (unsigned char)t,         (unsigned char)(r >> 32), (unsigned char)(r >> 24),
        (unsigned char)(r >> 16), (unsigned char)(r >> 8),  (unsigned char)r,
        (unsigned char)(n >> 16), (unsigned char)(n >> 8),  (unsigned char)n,
    };
    for (int i = 0; i < 12; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[OBJECTID_LEN] = '\0';
}

bool objectid_valid(const char *s)
{
    if (!s)
        return false;
    size_t i = 0;
    for (; s[i]; i++) {
        char c = s[i];
        if (i >= OBJECTID_LEN ||
            !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return i == OBJECTID_LEN;
}
