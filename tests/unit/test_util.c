/* Unit tests for src/util: buf, arena, jsonw, dtoa, objectid, ipaddr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/arena.h"
#include "util/buf.h"
#include "util/dtoa.h"
#include "util/ipaddr.h"
#include "util/jsonw.h"
#include "util/objectid.h"

static void test_buf_cap(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    assert_int_equal(buf_puts(&b, "world"), 0);
    assert_int_equal(buf_putc(&b, '!'), -E2BIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld");
    assert_int_equal(buf_printf(&b, "%d", 1), -E2BIG);
    char *t = buf_take(&b);
    assert_string_equal(t, "helloworld");
    free(t);
    assert_null(b.data);
    buf_free(&b);
}

static void test_arena(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 20000);
    char *s = arena_strdup(&a, "abc");
    assert_string_equal(s, "abc");
    assert_non_null(arena_alloc(&a, 8000));
    assert_null(arena_alloc(&a, 16000)); /* past the cap */
    assert_int_equal((uintptr_t)arena_alloc(&a, 3) % 16, 0);
    arena_free(&a);
}

static void check_double(double d, const char *want)
{
    char out[40];
    jsonw_format_double(d, out);
    assert_string_equal(out, want);
}

static void test_jsonw_doubles(void **state)
{
    (void)state;
    check_double(645.0, "645.0");
    check_double(9.053426445532069e-5, "9.053426445532069e-5");
    check_double(0.1, "0.1");
    check_double(1e16, "1e16");
    check_double(-2.5, "-2.5");
    check_double(48.761769913881054, "48.761769913881054");
    check_double(0.0, "0.0");
    buf_t b;
    buf_init(&b, 100);
    jsonw_double(&b, NAN);
    jsonw_double(&b, INFINITY);
    assert_string_equal(b.data, "nullnull");
    buf_free(&b);
}

static void test_jsonw_strings_and_values(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 1000);
    jsonw_string(&b, "a\"b\\c\n\x01\xc2\xb5m\xff", 11);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc2\xb5m\xef\xbf\xbd\"");
    buf_free(&b);
    json_t *v = json_pack("{s:i, s:f, s:[b, n], s:s}", "a", 1, "b", 2.0, "c", 1, "d", "µ");
    size_t len;
    char *text = jsonw_dumps(v, &len);
    assert_string_equal(text, "{\"a\":1,\"b\":2.0,\"c\":[true,null],\"d\":\"µ\"}");
    free(text);
    json_decref(v);
}

static void slow_shortest(double d, int min_prec, char *digits, int *prec, int *exp10)
{
    char tmp[48];
    for (int p = min_prec; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, fabs(d));
        if (p == 17 || strtod(tmp, NULL) == fabs(d)) {
            int n = 0;
            const char *s = tmp;
            for (; *s != 'e'; s++)
                if (*s >= '0' && *s <= '9')
                    digits[n++] = *s;
            *prec = p;
            *exp10 = atoi(s + 1);
            return;
        }
    }
}

/* The JSON layout as C's %g gives it (the writer's former code): shortest of %.15g,
 * %.16g, %.17g, exponent written e-5 / e16, ".0" on integral values. */
static void slow_json(double d, char *out)
{
    char tmp[48];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    char *e = strchr(tmp, 'e');
    if (!e) {
        if (!strchr(tmp, '.'))
            strcat(tmp, ".0");
        strcpy(out, tmp);
        return;
    }
    size_t mant = (size_t)(e - tmp);
    memcpy(out, tmp, mant);
    char *o = out + mant;
    *o++ = 'e';
    const char *x = e + 1;
    if (*x == '+')
        x++;
    else if (*x == '-')
        *o++ = *x++;
    while (*x == '0' && x[1])
        x++;
    strcpy(o, x);
}

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void check_shortest(double d)
{
    if (!isfinite(d) || d == 0)
        return;
    int min_prec = fabs(d) < DBL_MIN ? 1 : 15;
    char a[17], b[17];
    int pa, pb, xa, xb;
    dtoa_shortest(d, min_prec, a, &pa, &xa);
    slow_shortest(d, min_prec, b, &pb, &xb);
    char ja[40], jb[40];
    jsonw_format_double(d, ja);
    slow_json(d, jb);
    assert_string_equal(ja, jb);
    if (pa != pb || xa != xb || memcmp(a, b, (size_t)pa) != 0) {
        fprintf(stderr, "%.17g: %.*s e%d (%d) vs %.*s e%d (%d)\n", d, pa, a, xa, pa, pb, b, xb, pb);
        fail();
    }
}

/* dtoa_shortest gives the digits of the obvious search, and the JSON writer the text of
 * its former %g code, for doubles of every kind: random
 * bit patterns (every exponent, subnormals), values near 1 and of measured size, short
 * decimals, integers, and the neighbours of powers of ten (the carry cases). */
static void test_dtoa_shortest_matches_the_search(void **state)
{
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 300000; i++) {
        uint64_t bits = next_rand(&x);
        double d;
        memcpy(&d, &bits, sizeof(d));
        check_shortest(d);
        double u = (double)(next_rand(&x) >> 11) / 9007199254740992.0; /* [0, 1) */
        check_shortest(u);
        check_shortest((u - 0.5) * 1e3);
        check_shortest(u * 1e-9);
        check_shortest(u * 1e22);
        check_shortest((double)(next_rand(&x) % 100000) / 1000.0);
        check_shortest((double)(int64_t)(next_rand(&x) >> 20));
    }
    for (int e = -320; e <= 308; e++) {
        double p = pow(10, e);
        check_shortest(p);
        check_shortest(nextafter(p, 0));
        check_shortest(nextafter(p, INFINITY));
        check_shortest(-p);
    }
    check_shortest(DBL_MAX);
    check_shortest(DBL_MIN);
    check_shortest(5e-324);
    check_shortest(9007199254740993.0);
    check_shortest(0.1 + 0.2);
}

/* ---------------------------------------------------------------- objectid */

typedef struct oid_parts {
    uint32_t seconds;
    uint64_t random;  /* 5 bytes */
    uint32_t counter; /* 3 bytes */
} oid_parts;

static uint64_t hex_field(const char *s, int digits)
{
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        char c = s[i];
        assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')); /* lowercase hex */
        v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return v;
}

/* Checks an id's text and splits it: 8 hex digits of seconds, 10 random, 6 counter. */
static oid_parts oid_split(const char *id)
{
    assert_int_equal(strlen(id), OBJECTID_LEN);
    assert_true(objectid_valid(id));
    return (oid_parts){(uint32_t)hex_field(id, 8), hex_field(id + 8, 10),
                       (uint32_t)hex_field(id + 18, 6)};
}

/* b was made right after a by one thread of one process: same random part, the next
 * counter, and a larger id, except where the 3-byte counter wraps within a second
 * (MongoDB's layout allows that, once per 2^24 ids). */
static void assert_follows(const char *a, const char *b)
{
    oid_parts pa = oid_split(a), pb = oid_split(b);
    assert_true(pa.random == pb.random);
    assert_int_equal(pb.counter, (pa.counter + 1) & 0xffffff);
    assert_true(pb.seconds >= pa.seconds);
    if (pb.counter != 0 || pb.seconds != pa.seconds)
        assert_true(strcmp(a, b) < 0);
}

static void test_objectid_layout_and_order(void **state)
{
    (void)state;
    uint32_t before = (uint32_t)time(NULL);
    char prev[OBJECTID_LEN + 1], id[OBJECTID_LEN + 1];
    objectid_new(prev);
    for (int i = 0; i < 100000; i++) {
        objectid_new(id);
        assert_follows(prev, id);
        memcpy(prev, id, sizeof(id));
    }
    uint32_t after = (uint32_t)time(NULL);
    oid_parts last = oid_split(prev);
    assert_true(last.seconds >= before && last.seconds <= after);
}

static void test_objectid_valid(void **state)
{
    (void)state;
    assert_true(objectid_valid("66055ee49dc258bbfd26bbfc"));
    assert_true(objectid_valid("66055EE49DC258BBFD26BBFC"));
    assert_false(objectid_valid(NULL));
    assert_false(objectid_valid(""));
    assert_false(objectid_valid("66055ee49dc258bbfd26bbf"));   /* 23 */
    assert_false(objectid_valid("66055ee49dc258bbfd26bbfc0")); /* 25 */
    assert_false(objectid_valid("66055ee49dc258bbfd26bbfg"));
    assert_false(objectid_valid("66055ee49dc258bbfd26bbf "));
    assert_false(objectid_valid("0x055ee49dc258bbfd26bbfc0"));
}

#define OID_THREADS 4
#define OID_PER_THREAD 20000

static void *make_ids(void *arg)
{
    char(*ids)[OBJECTID_LEN + 1] = arg;
    for (int i = 0; i < OID_PER_THREAD; i++)
        objectid_new(ids[i]);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Threads share the process's random part and counter: no two ids are equal, and each
 * thread's ids increase. */
static void test_objectid_threads(void **state)
{
    (void)state;
    static char ids[OID_THREADS][OID_PER_THREAD][OBJECTID_LEN + 1];
    pthread_t t[OID_THREADS];
    for (int i = 0; i < OID_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, make_ids, ids[i]), 0);
    for (int i = 0; i < OID_THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    static uint32_t counters[OID_THREADS * OID_PER_THREAD];
    uint64_t random = oid_split(ids[0][0]).random;
    for (int i = 0; i < OID_THREADS; i++) {
        for (int j = 0; j < OID_PER_THREAD; j++) {
            oid_parts p = oid_split(ids[i][j]);
            assert_true(p.random == random);
            counters[i * OID_PER_THREAD + j] = p.counter;
            if (j > 0) {
                oid_parts q = oid_split(ids[i][j - 1]);
                assert_true(p.seconds >= q.seconds);
                if (p.seconds == q.seconds && p.counter > q.counter)
                    assert_true(strcmp(ids[i][j - 1], ids[i][j]) < 0);
            }
        }
    }
    size_t n = OID_THREADS * OID_PER_THREAD;
    qsort(counters, n, sizeof(counters[0]), cmp_u32);
    for (size_t i = 1; i < n; i++)
        assert_true(counters[i] != counters[i - 1]);
}

/* A forked child (a worker of the master) chooses its own random part; the parent keeps
 * its own and goes on counting. */
static void test_objectid_fork(void **state)
{
    (void)state;
    char before[OBJECTID_LEN + 1], child[OBJECTID_LEN + 1] = {0}, after[OBJECTID_LEN + 1];
    objectid_new(before);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char id[OBJECTID_LEN + 1];
        objectid_new(id);
        ssize_t w = write(fds[1], id, OBJECTID_LEN);
        _exit(w == OBJECTID_LEN ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], child, OBJECTID_LEN), OBJECTID_LEN);
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    objectid_new(after);
    oid_split(child);
    /* 5 random bytes: equal by chance once in 2^40 runs */
    assert_true(oid_split(child).random != oid_split(before).random);
    assert_follows(before, after);
}

static ip_addr addr_of(const char *s)
{
    ip_addr a;
    assert_true(ip_parse(s, strlen(s), &a));
    return a;
}

static void test_ipaddr(void **state)
{
    (void)state;
    ip_addr a;
    char text[IP_TEXT_MAX];
    /* both families, one form: v4 and its v4-mapped IPv6 text are the same key */
    ip_addr v4 = addr_of("192.0.2.7"), mapped = addr_of("::ffff:192.0.2.7");
    assert_true(ip_equal(&v4, &mapped));
    ip_format(&mapped, text, sizeof(text));
    assert_string_equal(text, "192.0.2.7");
    a = addr_of("2001:DB8:0:0::1");
    ip_format(&a, text, sizeof(text));
    assert_string_equal(text, "2001:db8::1");
    /* a prefix of a longer string, as X-Forwarded-For entries are handed over */
    assert_true(ip_parse("10.1.2.3, 10.9.9.9", 8, &a));
    ip_format(&a, text, sizeof(text));
    assert_string_equal(text, "10.1.2.3");
    const char *bad[] = {"",      "1.2.3",      "1.2.3.4.5",  "256.1.1.1", "01.2.3.4x",
                         "[::1]", "1.2.3.4:80", "fe80::1%lo", "unknown",   " 1.2.3.4"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(ip_parse(bad[i], strlen(bad[i]), &a));

    /* networks: an address alone, IPv4 and IPv6 prefixes, and what they contain */
    ip_net n;
    assert_true(ip_net_parse("127.0.0.1", &n));
    assert_int_equal(n.prefix, 128);
    a = addr_of("127.0.0.1");
    assert_true(ip_net_contains(&n, &a));
    a = addr_of("127.0.0.2");
    assert_false(ip_net_contains(&n, &a));
    assert_true(ip_net_parse("10.0.0.0/8", &n));
    a = addr_of("10.255.1.2");
    assert_true(ip_net_contains(&n, &a));
    a = addr_of("11.0.0.0");
    assert_false(ip_net_contains(&n, &a));
    a = addr_of("::a00:1"); /* not the v4-mapped 10.0.0.1 */
    assert_false(ip_net_contains(&n, &a));
    assert_true(ip_net_parse("172.16.0.0/12", &n));
    a = addr_of("172.31.255.255");
    assert_true(ip_net_contains(&n, &a));
    a = addr_of("172.32.0.0");
    assert_false(ip_net_contains(&n, &a));
    assert_true(ip_net_parse("fd00::/8", &n));
    a = addr_of("fd12:3456::1");
    assert_true(ip_net_contains(&n, &a));
    a = addr_of("fe80::1");
    assert_false(ip_net_contains(&n, &a));
    assert_true(ip_net_parse("0.0.0.0/0", &n));
    a = addr_of("203.0.113.9");
    assert_true(ip_net_contains(&n, &a));
    a = addr_of("2001:db8::1");
    assert_false(ip_net_contains(&n, &a)); /* every IPv4 address, not every address */
    assert_true(ip_net_parse("::/0", &n));
    assert_true(ip_net_contains(&n, &a));
    const char *badnet[] = {"10.0.0.1/8",  "10.0.0.0/33",   "::/129", "10.0.0.0/", "10.0.0.0/x",
                            "10.0.0.0/-1", "10.0.0.0/0008", "/8",     "localhost"};
    for (size_t i = 0; i < sizeof(badnet) / sizeof(badnet[0]); i++)
        assert_false(ip_net_parse(badnet[i], &n));
    ip_net list[2];
    assert_true(ip_net_parse("127.0.0.1", &list[0]));
    assert_true(ip_net_parse("::1", &list[1]));
    a = addr_of("::1");
    assert_true(ip_nets_contain(list, 2, &a));
    a = addr_of("127.0.0.2");
    assert_false(ip_nets_contain(list, 2, &a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_jsonw_doubles),
        cmocka_unit_test(test_jsonw_strings_and_values),
        cmocka_unit_test(test_dtoa_shortest_matches_the_search),
        cmocka_unit_test(test_objectid_layout_and_order),
        cmocka_unit_test(test_objectid_valid),
        cmocka_unit_test(test_objectid_threads),
        cmocka_unit_test(test_objectid_fork),
        cmocka_unit_test(test_ipaddr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
