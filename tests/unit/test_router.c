/* Unit tests for src/http/router.c and src/http/gate.c, which are pure functions of their
 * inputs: the router's four outcomes (found with parameters, 405 with Allow, 307 keeping
 * the query, 404) and first-match order; the gate's per-user slots, FIFO hand-over,
 * leaving the queue and "no cap". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "http/gate.h"
#include "http/router.h"

static void handler(http_request_t *req)
{
    (void)req;
}

static const http_route routes[] = {
    {.method = OGD_GET, .pattern = "/records/count", .handler = handler},
    {.method = OGD_GET, .pattern = "/records/{id_}", .handler = handler},
    {.method = OGD_DELETE, .pattern = "/records/{id_}", .handler = handler},
    {.method = OGD_POST, .pattern = "/submit/hdf", .handler = handler},
    {.method = OGD_GET, .pattern = "/users/{a}/x/{b}", .handler = handler},
    {.method = OGD_GET, .pattern = "/experiments/", .handler = handler},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static route_match match(arena_t *a, http_method m, const char *path, const char *query)
{
    route_match out;
    router_match(routes, NROUTES, m, path, query, a, &out);
    return out;
}

static void test_found_with_params(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 1 << 20);
    route_match m = match(&a, OGD_GET, "/records/count", "");
    assert_int_equal(m.outcome, ROUTE_FOUND);
    assert_ptr_equal(m.route, &routes[0]); /* first match wins over /records/{id_} */
    assert_int_equal(m.nparams, 0);

    m = match(&a, OGD_DELETE, "/records/abc", "");
    assert_int_equal(m.outcome, ROUTE_FOUND);
    assert_ptr_equal(m.route, &routes[2]);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.params[0], "abc");

    m = match(&a, OGD_GET, "/users/u1/x/u2", "");
    assert_int_equal(m.outcome, ROUTE_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.params[0], "u1");
    assert_string_equal(m.params[1], "u2");

    /* a parameter is one non-empty segment */
    m = match(&a, OGD_GET, "/users//x/u2", "");
    assert_int_equal(m.outcome, ROUTE_NOT_FOUND);
    m = match(&a, OGD_GET, "/records/a/b", "");
    assert_int_equal(m.outcome, ROUTE_NOT_FOUND);
    arena_free(&a);
}

static void test_method_not_allowed(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 1 << 20);
    route_match m = match(&a, OGD_GET, "/submit/hdf", "");
    assert_int_equal(m.outcome, ROUTE_METHOD_NOT_ALLOWED);
    assert_null(m.route);
    assert_string_equal(m.allow, "POST");
    /* the first route whose path matches names the method */
    m = match(&a, OGD_POST, "/records/x", "");
    assert_int_equal(m.outcome, ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET");
    arena_free(&a);
}

static void test_redirect_and_not_found(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 1 << 20);
    route_match m = match(&a, OGD_GET, "/experiments", "a=1&b=2");
    assert_int_equal(m.outcome, ROUTE_REDIRECT);
    assert_string_equal(m.location, "/experiments/?a=1&b=2");
    m = match(&a, OGD_POST, "/submit/hdf/", "");
    assert_int_equal(m.outcome, ROUTE_REDIRECT);
    assert_string_equal(m.location, "/submit/hdf");
    /* a decoded CR/LF cannot go into a header: still 307, without Location */
    m = match(&a, OGD_GET, "/experiments", "x=\r\nSet-Cookie: a");
    assert_int_equal(m.outcome, ROUTE_REDIRECT);
    assert_null(m.location);
    m = match(&a, OGD_GET, "/nothing", "");
    assert_int_equal(m.outcome, ROUTE_NOT_FOUND);
    m = match(&a, OGD_GET, "/", "");
    assert_int_equal(m.outcome, ROUTE_NOT_FOUND);
    arena_free(&a);
}

static void test_gate_per_user(void **state)
{
    (void)state;
    http_gate_t *g = gate_new(1, 0);
    assert_non_null(g);
    http_request_t r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 4; i++)
        list_init(&r[i].gate_node); /* as the server makes requests */
    r[0].username = "alice";
    r[1].username = "alice";
    r[2].username = "alice";
    r[3].username = "bob";
    assert_int_equal(gate_enter(g, &r[0]), GATE_RUN);
    assert_int_equal(gate_enter(g, &r[1]), GATE_WAIT);
    assert_int_equal(gate_enter(g, &r[2]), GATE_WAIT);
    assert_int_equal(gate_enter(g, &r[3]), GATE_RUN); /* another user is not held up */
    assert_int_equal(gate_waiting(g), 2);

    /* alice's first finishes: her next in arrival order now holds the slot */
    assert_ptr_equal(gate_leave(g, &r[0]), &r[1]);
    assert_true(r[1].gate_held);
    assert_int_equal(gate_waiting(g), 1);
    /* the third's client goes away while it waits */
    gate_drop(g, &r[2]);
    assert_int_equal(gate_waiting(g), 0);
    assert_null(gate_leave(g, &r[1]));
    assert_null(gate_leave(g, &r[3]));
    /* a request that held no slot gives nothing back */
    assert_null(gate_leave(g, &r[2]));
    gate_free(g);

    /* per_user 0: no cap */
    g = gate_new(0, 0);
    assert_int_equal(gate_enter(g, &r[0]), GATE_RUN);
    assert_int_equal(gate_enter(g, &r[1]), GATE_RUN);
    assert_null(gate_leave(g, &r[0]));
    assert_int_equal(gate_shed(g), 0);
    gate_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_with_params),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_redirect_and_not_found),
        cmocka_unit_test(test_gate_per_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
