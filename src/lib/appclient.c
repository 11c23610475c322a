/* Finding and calling a running app (see appclient.h). */
#include "codictate/appclient.h"

#include "codictate/app.h"
#include "codictate/util.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS 1500

static void port_file(char *buf, size_t cap)
{
    char dir[4000];

    cdt_state_dir(dir, sizeof(dir));
    snprintf(buf, cap, "%s/app.port", dir);
}

int cdt_appclient_publish(int port)
{
    char path[4096], dir[4096], tmp[4200], text[32];
    int fd, len;
    char *slash;

    port_file(path, sizeof(path));
    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (cdt_mkdir_p(dir, 0700) != 0)
        return CDT_EIO;
    snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return CDT_EIO;
    len = snprintf(text, sizeof(text), "%d\n", port);
    if (write(fd, text, (size_t)len) != len || close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return CDT_EIO;
    }
    return 0;
}

void cdt_appclient_unpublish(int port)
{
    char path[4096], text[32] = "";
    FILE *f;

    port_file(path, sizeof(path));
    f = fopen(path, "re");
    if (!f)
        return;
    if (fgets(text, sizeof(text), f) && atoi(text) == port)
        unlink(path);
    fclose(f);
}

int cdt_appclient_call(int port, const char *method, const char *path, const char *body,
                       long timeout_ms, struct cdt_client_response *out, char *errmsg,
                       size_t errcap)
{
    return cdt_client_request(port, NULL, method, path, body, timeout_ms, out, errmsg, errcap);
}

int cdt_appclient_call_stoppable(int port, const char *method, const char *path, const char *body,
                                 long timeout_ms, cdt_client_data_fn on_data, void *data_ud,
                                 cdt_client_stop_fn stop, void *stop_data,
                                 struct cdt_client_response *out, char *errmsg, size_t errcap)
{
    return cdt_client_request_observed(port, NULL, method, path, body, timeout_ms, on_data, data_ud,
                                       stop, stop_data, out, errmsg, errcap);
}

/* Whether the app answers at port. */
static bool answers(int port)
{
    struct cdt_client_response r = {0};
    char err[256];
    bool yes = false;

    if (port <= 0 || port > 65535)
        return false;
    if (cdt_client_request(port, NULL, "GET", "/api/status", NULL, PROBE_TIMEOUT_MS, &r, err,
                           sizeof(err)) == 0) {
        cJSON *o = r.status == 200 ? cJSON_Parse(r.body) : NULL;

        yes = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "dictation"));
        cJSON_Delete(o);
    }
    free(r.body);
    return yes;
}

int cdt_appclient_find(void)
{
    long env = cdt_env_long("CODICTATE_APP_PORT", 0, 65535, 0);
    char path[4096], text[32] = "";
    FILE *f;

    if (env > 0)
        return answers((int)env) ? (int)env : 0;
    if (cdt_env_long("CODICTATE_NO_APP", 0, 1, 0) == 1)
        return 0;
    port_file(path, sizeof(path));
    f = fopen(path, "re");
    if (f) {
        int port = fgets(text, sizeof(text), f) ? atoi(text) : 0;

        fclose(f);
        if (answers(port))
            return port;
    }
    return answers(CDT_APP_PORT) ? CDT_APP_PORT : 0;
}
