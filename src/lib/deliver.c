/* Delivering text to the desktop (see deliver.h). */
#include "codictate/deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static bool on_path(const char *exe)
{
    const char *path = getenv("PATH");
    char buf[4096];

    while (path && *path) {
        size_t len = strcspn(path, ":");

        if (len > 0 && len + strlen(exe) + 2 < sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, exe);
            if (access(buf, X_OK) == 0)
                return true;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return false;
}

/* Runs argv (looked up in PATH) with `input` on its stdin (NULL: none) and its
 * stdout/stderr on /dev/null — clipboard tools stay behind to serve the
 * selection and must not hold our stdout open. Returns the exit status, or -1. */
static int run_tool(char *const argv[], const char *input)
{
    posix_spawn_file_actions_t fa;
    int pfd[2] = {-1, -1}, status = 0, rc;
    pid_t pid;

    if (input && pipe(pfd) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    if (input) {
        posix_spawn_file_actions_adddup2(&fa, pfd[0], 0);
        posix_spawn_file_actions_addclose(&fa, pfd[0]);
        posix_spawn_file_actions_addclose(&fa, pfd[1]);
    } else {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (input)
        close(pfd[0]);
    if (rc != 0) {
        if (input)
            close(pfd[1]);
        return -1;
    }
    if (input) {
        size_t len = strlen(input), off = 0;
        struct sigaction ign = {.sa_handler = SIG_IGN}, old;

        sigaction(SIGPIPE, &ign, &old);
        while (off < len) {
            ssize_t w = write(pfd[1], input + off, len - off);

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(pfd[1]);
        sigaction(SIGPIPE, &old, NULL);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int cdt_deliver_copy(const char *text, char *errmsg, size_t errcap)
{
    bool wayland = getenv("WAYLAND_DISPLAY") && *getenv("WAYLAND_DISPLAY");
    bool x11 = getenv("DISPLAY") && *getenv("DISPLAY");
    char *wl[] = {"wl-copy", NULL};
    char *xclip[] = {"xclip", "-selection", "clipboard", NULL};
    char *xsel[] = {"xsel", "--clipboard", "--input", NULL};
    char **tool = NULL;

    if (wayland && on_path("wl-copy"))
        tool = wl;
    else if (x11 && on_path("xclip"))
        tool = xclip;
    else if (x11 && on_path("xsel"))
        tool = xsel;
    if (!tool) {
        snprintf(errmsg, errcap, "%s",
                 wayland ? "wl-copy not found (install wl-clipboard)"
                 : x11   ? "xclip not found (install xclip)"
                         : "no graphical session (WAYLAND_DISPLAY / DISPLAY unset)");
        return -1;
    }
    if (run_tool(tool, text) != 0) {
        snprintf(errmsg, errcap, "%s failed", tool[0]);
        return -1;
    }
    return 0;
}

int cdt_deliver_type(const char *text, char *errmsg, size_t errcap)
{
    bool wayland = getenv("WAYLAND_DISPLAY") && *getenv("WAYLAND_DISPLAY");
    bool x11 = getenv("DISPLAY") && *getenv("DISPLAY");
    char *t = (char *)text;
    char *wtype[] = {"wtype", "--", t, NULL};
    char *xdo[] = {"xdotool", "type", "--clearmodifiers", "--", t, NULL};
    char *ydo[] = {"ydotool", "type", "--", t, NULL};
    char **order[3];
    int n = 0;

    /* The tool of the session first; ydotool (uinput) works anywhere it may. */
    if (wayland)
        order[n++] = wtype;
    if (x11)
        order[n++] = xdo;
    order[n++] = ydo;
    for (int i = 0; i < n; i++) {
        if (!on_path(order[i][0]))
            continue;
        if (run_tool(order[i], NULL) == 0)
            return 0;
        snprintf(errmsg, errcap, "%s failed", order[i][0]);
        return -1;
    }
    snprintf(errmsg, errcap, "no typing tool found (install %s)",
             wayland ? "wtype or ydotool"
             : x11   ? "xdotool"
                     : "ydotool");
    return -1;
}
