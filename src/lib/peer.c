/* Loopback peers' users from sock_diag (see peer.h).
 *
 * A query names the socket it wants by its 4-tuple as that socket sees it: for the
 * peer of our connection, its source is our destination. */
#include "codictate/peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Looks up the loopback peer of a connected TCP socket with sock_diag: 1 and *m
 * when its socket exists, 0 when there is no such socket (gone), -1 when we cannot
 * tell (not loopback, no sock_diag). One netlink round trip. */
static int loopback_peer(int fd, struct inet_diag_msg *m)
{
    struct sockaddr_storage me, peer;
    socklen_t ml = sizeof(me), pl = sizeof(peer);
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } q;
    union {
        struct nlmsghdr nlh;
        char buf[8192];
    } a;
    struct sockaddr_nl nladdr = {.nl_family = AF_NETLINK};
    int nl, rc = -1;
    ssize_t n;

    if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 || me.ss_family != peer.ss_family)
        return -1;
    memset(&q, 0, sizeof(q));
    q.nlh.nlmsg_len = sizeof(q);
    q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    q.nlh.nlmsg_flags = NLM_F_REQUEST;
    q.r.sdiag_family = (unsigned char)peer.ss_family;
    q.r.sdiag_protocol = IPPROTO_TCP;
    q.r.idiag_states = ~0u;
    q.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    q.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (peer.ss_family == AF_INET) { /* the peer's socket: its source is our destination */
        const struct sockaddr_in *p4 = (const struct sockaddr_in *)&peer;
        const struct sockaddr_in *m4 = (const struct sockaddr_in *)&me;

        if ((ntohl(p4->sin_addr.s_addr) >> 24) != 127)
            return -1;
        q.r.id.idiag_sport = p4->sin_port;
        q.r.id.idiag_dport = m4->sin_port;
        memcpy(q.r.id.idiag_src, &p4->sin_addr, 4);
        memcpy(q.r.id.idiag_dst, &m4->sin_addr, 4);
    } else if (peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)&peer;
        const struct sockaddr_in6 *m6 = (const struct sockaddr_in6 *)&me;

        if (!IN6_IS_ADDR_LOOPBACK(&p6->sin6_addr))
            return -1;
        q.r.id.idiag_sport = p6->sin6_port;
        q.r.id.idiag_dport = m6->sin6_port;
        memcpy(q.r.id.idiag_src, &p6->sin6_addr, 16);
        memcpy(q.r.id.idiag_dst, &m6->sin6_addr, 16);
    } else {
        return -1;
    }
    nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -1;
    if (sendto(nl, &q, sizeof(q), 0, (struct sockaddr *)&nladdr, sizeof(nladdr)) ==
        (ssize_t)sizeof(q)) {
        struct pollfd pf = {.fd = nl, .events = POLLIN};

        if (poll(&pf, 1, 200) == 1 && (n = recv(nl, &a, sizeof(a), 0)) >= (ssize_t)sizeof(a.nlh) &&
            NLMSG_OK(&a.nlh, (size_t)n)) {
            if (a.nlh.nlmsg_type == SOCK_DIAG_BY_FAMILY &&
                a.nlh.nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
                memcpy(m, NLMSG_DATA(&a.nlh), sizeof(*m));
                rc = 1;
            } else if (a.nlh.nlmsg_type == NLMSG_ERROR &&
                       a.nlh.nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
                const struct nlmsgerr *e = NLMSG_DATA(&a.nlh);

                rc = e->error == -ENOENT ? 0 : -1; /* no such socket: gone */
            }
        }
    }
    close(nl);
    return rc;
}

/* Whether a listener's address takes connections to 127.0.0.1: 127.0.0.1 or any
 * address, in IPv4 or (dual-stack) IPv6. */
static bool reaches_127_0_0_1(const struct inet_diag_msg *m)
{
    static const unsigned char any6[16] = {0};
    static const unsigned char mapped6[16] = {0, 0, 0,    0,    0,   0, 0, 0,
                                              0, 0, 0xff, 0xff, 127, 0, 0, 1};
    uint32_t a4;

    if (m->idiag_family == AF_INET) {
        memcpy(&a4, m->id.idiag_src, 4);
        return a4 == htonl(INADDR_LOOPBACK) || a4 == htonl(INADDR_ANY);
    }
    return m->idiag_family == AF_INET6 &&
           (memcmp(m->id.idiag_src, any6, 16) == 0 || memcmp(m->id.idiag_src, mapped6, 16) == 0);
}

int cdt_peer_listener_uid(int port, uid_t *uid)
{
    static const unsigned char families[] = {AF_INET, AF_INET6};
    int found = 0, answered = 0;

    for (size_t f = 0; f < sizeof(families) && !found; f++) {
        struct {
            struct nlmsghdr nlh;
            struct inet_diag_req_v2 r;
        } q;
        union {
            struct nlmsghdr nlh;
            char buf[16384];
        } a;
        struct sockaddr_nl nladdr = {.nl_family = AF_NETLINK};
        int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        bool done = false;

        if (nl < 0)
            continue;
        memset(&q, 0, sizeof(q));
        q.nlh.nlmsg_len = sizeof(q);
        q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        q.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        q.r.sdiag_family = families[f];
        q.r.sdiag_protocol = IPPROTO_TCP;
        q.r.idiag_states = 1u << 10; /* TCP_LISTEN */
        if (sendto(nl, &q, sizeof(q), 0, (struct sockaddr *)&nladdr, sizeof(nladdr)) !=
            (ssize_t)sizeof(q)) {
            close(nl);
            continue;
        }
        while (!done) {
            struct pollfd pf = {.fd = nl, .events = POLLIN};
            ssize_t n;
            size_t left;

            if (poll(&pf, 1, 200) != 1 || (n = recv(nl, &a, sizeof(a), 0)) <= 0)
                break;
            left = (size_t)n;
            for (struct nlmsghdr *h = &a.nlh; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
                const struct inet_diag_msg *m;

                if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
                    done = true;
                    answered |= h->nlmsg_type == NLMSG_DONE;
                    break;
                }
                if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
                    continue;
                m = NLMSG_DATA(h);
                /* The listener a connection to 127.0.0.1:port reaches: only one can
                 * be (two users cannot share one, SO_REUSEPORT needs the same user). */
                if (ntohs(m->id.idiag_sport) == port && reaches_127_0_0_1(m) && !found) {
                    *uid = (uid_t)m->idiag_uid;
                    found = 1;
                }
            }
        }
        close(nl);
    }
    return found ? 1 : answered ? 0 : -1;
}

int cdt_peer_uid(int fd, uid_t *uid)
{
    struct inet_diag_msg m;
    int rc = loopback_peer(fd, &m);

    if (rc <= 0)
        return rc;
    if (m.idiag_inode == 0)
        return 0; /* closed: no owner left */
    *uid = (uid_t)m.idiag_uid;
    return 1;
}
