/* The app server (front end): `codictate serve`'s HTTP routes over the application
 * layer (codictate/app.h), server-sent events, and the web UI's static files. The
 * routes parse the request, call the app and answer; the rules are in app.c. */
#ifndef CODICTATE_APP_SERVER_H
#define CODICTATE_APP_SERVER_H

#include <stddef.h>

struct cdt_app_params;
struct cdt_app_server;

/* Makes the app (p: on_event and user_data are replaced) and listens on
 * 127.0.0.1:port. Returns 0 and *out, or an error with errmsg (the port in use:
 * CDT_EEXISTS). */
int cdt_app_server_new(const struct cdt_app_params *p, int port, struct cdt_app_server **out,
                       char *errmsg, size_t errcap);

int cdt_app_server_port(const struct cdt_app_server *s);

/* Ends the event streams, stops the server, frees the app. NULL is a no-op. */
void cdt_app_server_free(struct cdt_app_server *s);

#endif
