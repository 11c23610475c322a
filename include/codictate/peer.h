/* Which user of this machine is at the other end of a loopback TCP connection.
 *
 * 127.0.0.1 is reachable by every user of the machine, so a local server that holds
 * someone's transcripts (the app, the sidecar) asks the kernel whose socket a
 * client's is, and a client asks whose socket it is about to send a transcript to.
 * Both answers come from sock_diag (NETLINK_SOCK_DIAG, the netlink family `ss`
 * reads), which any process may query. Thread-safe; no state. */
#ifndef CODICTATE_PEER_H
#define CODICTATE_PEER_H

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The user owning the other end of a connected loopback TCP socket (fd): 1 and
 * *uid when that socket is held by a process, 0 when it is closed or gone (or not
 * accepted yet), -1 when it cannot be told (not loopback, no sock_diag). A server
 * asks it about its clients. One netlink round trip. */
int cdt_peer_uid(int fd, uid_t *uid);

/* The user owning the TCP socket that a connection to 127.0.0.1:port reaches (one
 * listening on that port at 127.0.0.1 or any address): 1 and *uid, 0 when there is
 * none, -1 when it cannot be told. What a client
 * checks before it sends: the server's accepted socket may not exist yet when
 * connect() returns (it waits in the listener's queue), its listener does. Two
 * users cannot listen on one port (SO_REUSEPORT needs the same user). One dump of
 * the machine's TCP listeners. */
int cdt_peer_listener_uid(int port, uid_t *uid);

#ifdef __cplusplus
}
#endif
#endif
