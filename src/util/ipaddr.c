/*
 * ipaddr.c: see ipaddr.h. Parsing is inet_pton's (strict: dotted quads of four decimal
 * parts only, RFC 4291 text for IPv6).
 */
#include "util/ipaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4(const ip_addr *a)
{
    return memcmp(a->b, V4_MAPPED, sizeof(V4_MAPPED)) == 0;
}

static void from_v4(const void *in4, ip_addr *out)
{
    memcpy(out->b, V4_MAPPED, sizeof(V4_MAPPED));
    memcpy(out->b + 12, in4, 4);
}

bool ip_parse(const char *s, size_t len, ip_addr *out)
{
    char text[IP_TEXT_MAX];
    if (len == 0 || len >= sizeof(text))
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    struct in_addr v4;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        from_v4(&v4, out);
        return true;
    }
    return inet_pton(AF_INET6, text, out->b) == 1;
}

bool ip_net_parse(const char *s, ip_net *out)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (!ip_parse(s, alen, &out->addr))
        return false;
    /* An IPv4 network is written with an IPv4 prefix; ::ffff:0:0/96 style stays IPv6. */
    bool v4_text = memchr(s, ':', alen) == NULL;
    unsigned max = v4_text ? 32 : 128;
    unsigned prefix = max;
    if (slash) {
        const char *p = slash + 1;
        if (!*p || strlen(p) > 3 || strspn(p, "0123456789") != strlen(p))
            return false;
        prefix = (unsigned)atoi(p);
        if (prefix > max)
            return false;
    }
    out->prefix = v4_text ? prefix + 96 : prefix;
    /* no host bits: "10.0.0.1/8" is most likely a typo for an address or a network */
    for (unsigned bit = out->prefix; bit < 128; bit++)
        if (out->addr.b[bit / 8] & (0x80u >> (bit % 8)))
            return false;
    return true;
}

bool ip_net_contains(const ip_net *n, const ip_addr *a)
{
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr.b, a->b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (n->addr.b[full] & mask) == (a->b[full] & mask);
}

bool ip_nets_contain(const ip_net *nets, size_t n, const ip_addr *a)
{
    for (size_t i = 0; i < n; i++)
        if (ip_net_contains(&nets[i], a))
            return true;
    return false;
}

bool ip_from_sockaddr(const struct sockaddr *sa, ip_addr *out)
{
    if (sa->sa_family == AF_INET) {
        from_v4(&((const struct sockaddr_in *)sa)->sin_addr, out);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

void ip_format(const ip_addr *a, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (is_v4(a))
        inet_ntop(AF_INET, a->b + 12, out, (socklen_t)outlen);
    else
        inet_ntop(AF_INET6, a->b, out, (socklen_t)outlen);
}

bool ip_equal(const ip_addr *a, const ip_addr *b)
{
    return memcmp(a->b, b->b, 16) == 0;
}
