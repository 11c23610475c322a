/* peer.c: whose socket the other end of a loopback connection is (sock_diag). As
 * root the test also binds a listener as another user (seteuid) to see it named. */
#include "../test.h"
#include "codictate/peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

/* A TCP listener on addr:0; returns its fd and *port, or -1. */
static int listen_on(const char *addr, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static int connect_to(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The listener and both ends of a connection are this user's. */
TEST(own_listener_and_connection)
{
    int port = 0, lfd = listen_on("127.0.0.1", &port), cfd, sfd;
    uid_t uid = (uid_t)-1;

    CHECK(lfd >= 0);
    CHECK_INT(cdt_peer_listener_uid(port, &uid), 1);
    CHECK_INT(uid, geteuid());
    cfd = connect_to(port);
    CHECK(cfd >= 0);
    /* Not accepted yet: the server's end has no owner; the listener does. */
    CHECK_INT(cdt_peer_uid(cfd, &uid), 0);
    sfd = accept(lfd, NULL, NULL);
    CHECK(sfd >= 0);
    uid = (uid_t)-1;
    CHECK_INT(cdt_peer_uid(sfd, &uid), 1); /* the server asks about its client */
    CHECK_INT(uid, geteuid());
    uid = (uid_t)-1;
    CHECK_INT(cdt_peer_uid(cfd, &uid), 1); /* and the client about the server */
    CHECK_INT(uid, geteuid());
    close(cfd);
    CHECK_INT(cdt_peer_uid(sfd, &uid), 0); /* closed: no owner left */
    close(sfd);
    close(lfd);
    CHECK_INT(cdt_peer_listener_uid(port, &uid), 0); /* nothing listens any more */
}

/* A listener on 127.0.0.2 does not take connections to 127.0.0.1: not named. */
TEST(listener_on_another_address_is_not_the_one)
{
    int port = 0, lfd = listen_on("127.0.0.2", &port);
    uid_t uid;

    CHECK(lfd >= 0);
    CHECK_INT(cdt_peer_listener_uid(port, &uid), 0);
    close(lfd);
    lfd = listen_on("0.0.0.0", &port);
    CHECK(lfd >= 0);
    CHECK_INT(cdt_peer_listener_uid(port, &uid), 1); /* any address: it is */
    close(lfd);
}

/* Not a socket, not connected: cannot be told. */
TEST(not_a_connection)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uid_t uid;

    CHECK_INT(cdt_peer_uid(fd, &uid), -1);
    CHECK_INT(cdt_peer_uid(-1, &uid), -1);
    close(fd);
}

/* As root: a listener another user made is named with that user. */
TEST(another_users_listener)
{
    int port = 0, lfd;
    uid_t uid = 0;

    if (geteuid() != 0) {
        fprintf(stderr, "note: not root: another user's listener is not tried\n");
        return;
    }
    CHECK(seteuid(65534) == 0);
    lfd = listen_on("127.0.0.1", &port);
    CHECK(seteuid(0) == 0);
    CHECK(lfd >= 0);
    CHECK_INT(cdt_peer_listener_uid(port, &uid), 1);
    CHECK_INT(uid, 65534);
    close(lfd);
}

int main(void)
{
    RUN(own_listener_and_connection);
    RUN(listener_on_another_address_is_not_the_one);
    RUN(not_a_connection);
    RUN(another_users_listener);
    return TEST_END();
}
