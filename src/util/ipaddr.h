/*
 * ipaddr: IP addresses as keys, and networks as allow-lists (server.forwarded_allow_ips,
 * the per-client connection cap of the HTTP server).
 *
 * One form for both families: 16 bytes, an IPv4 address held as the IPv4-mapped IPv6
 * address ::ffff:a.b.c.d, so a dual-stack socket's v4-mapped peer and the plain IPv4
 * address are one key, and one network type covers both.
 */
#ifndef OGD_UTIL_IPADDR_H
#define OGD_UTIL_IPADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Room for the text of any address, with its NUL (INET6_ADDRSTRLEN). */
#define IP_TEXT_MAX 46

typedef struct ip_addr {
    unsigned char b[16];
} ip_addr;

typedef struct ip_net {
    ip_addr addr;    /** host bits zero */
    unsigned prefix; /** leading bits that must match, 0..128 over the 16 bytes */
} ip_net;

/* An address in its usual text: "192.0.2.1" or "2001:db8::1" (s[0..len), no brackets,
 * port or zone). */
bool ip_parse(const char *s, size_t len, ip_addr *out);
/* A network: an address (every bit must match) or ADDRESS/PREFIX with a prefix of 0..32
 * (IPv4) or 0..128 (IPv6) and no host bits set ("10.0.0.0/8", "fd00::/8"). */
bool ip_net_parse(const char *s, ip_net *out);
bool ip_net_contains(const ip_net *n, const ip_addr *a);
/* Any of nets[0..n) contains a. */
bool ip_nets_contain(const ip_net *nets, size_t n, const ip_addr *a);
/* The address of an AF_INET or AF_INET6 socket address; false for other families. */
bool ip_from_sockaddr(const struct sockaddr *sa, ip_addr *out);
/* The text of a: dotted quad for IPv4 (mapped) addresses. out: IP_TEXT_MAX bytes or
 * more. */
void ip_format(const ip_addr *a, char *out, size_t outlen);
bool ip_equal(const ip_addr *a, const ip_addr *b);

#endif
