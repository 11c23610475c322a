/* Fuzz target: the app's API (`codictate serve`: src/app/server.c's routes over
 * src/lib/app.c) through the real server (httpd.c) on loopback, in the style of
 * fuzz_sidecar_http.c.
 *
 * Hermetic: HOME, the XDG directories and HF_HOME are a fresh temporary directory
 * (settings, history and the model cache start empty; two history entries are
 * written there, one with a saved recording); when the kernel lets us, the process
 * moves to a network namespace of its own first (only its own loopback); and
 * anyway HF_ENDPOINT and the proxies point at a closed loopback port, PulseAudio at
 * a socket that does not exist (no microphone), the built-in model is hidden and
 * the sidecar binary is one that does not exist, so a load fails at once.
 *
 * The first byte picks what the rest is:
 *   0: a raw request, sent as it is, then the write side shut (end of input);
 *   1: the body of POST /api/settings, 2: of POST /api/refine,
 *   3: "<path>\n<body>": POST <path> with that JSON body (models, dictation,
 *      history actions), 4: GET <path> of the rest's first line.
 * Bodies are sent with a correct Content-Length. Whatever the server answers is
 * read to its end (an event stream: to its first event); a crash, a leak or an
 * answer that never ends fails. The server lives for the whole run. The client
 * side is fuzz_http.h's (EINTR, CODICTATE_FUZZ_SIGNAL_MS). */
#include "codictate/app.h"
#include "fuzz_http.h"
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct cdt_app_server *server;
static int port;
static char root[256], history_file[512];
static char sidecar_exe[512];

/* Two entries: one refined, one recorded with a (short, silent) WAV. */
static const char history_text[] =
    "{\"id\":\"20260101-100000-000-1\",\"time_ms\":1767261600000,\"status\":\"done\","
    "\"source\":\"microphone\",\"audio_path\":null,\"audio_seconds\":1.5,\"raw\":\"um so it "
    "goes\",\"refined\":\"So it goes.\",\"fallback_reason\":null,\"error\":null,\"model\":null,"
    "\"timings\":{\"refine_ms\":2}}\n"
    "{\"id\":\"20260101-100001-000-2\",\"time_ms\":1767261601000,\"status\":\"recorded\","
    "\"source\":\"microphone\",\"audio_path\":\"%s/rec.wav\",\"audio_seconds\":0.1,\"raw\":null,"
    "\"refined\":null,\"fallback_reason\":null,\"error\":null,\"model\":null}\n";

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "fuzz_app: cannot write %s\n", path);
        abort();
    }
}

/* A mono 16 kHz WAV of 0.1 s of silence. */
static void write_wav(const char *path)
{
    unsigned char h[44] = "RIFF....WAVEfmt ";
    const uint32_t n = 1600 * 2, riff = 36 + n, fmt = 16, rate = 16000, bps = 32000;
    const uint16_t pcm = 1, ch = 1, align = 2, bits = 16;
    unsigned char *w = calloc(1, sizeof(h) + n);

    if (!w)
        abort();
    memcpy(h + 4, &riff, 4);
    memcpy(h + 16, &fmt, 4);
    memcpy(h + 20, &pcm, 2);
    memcpy(h + 22, &ch, 2);
    memcpy(h + 24, &rate, 4);
    memcpy(h + 28, &bps, 4);
    memcpy(h + 32, &align, 2);
    memcpy(h + 34, &bits, 2);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &n, 4);
    memcpy(w, h, sizeof(h));
    write_file(path, w, sizeof(h) + n);
    free(w);
}

/* Writes the two history entries (again: a delete removes them). */
static void seed_history(void)
{
    char dir[600], *text;
    int n;

    snprintf(dir, sizeof(dir), "%s/data", root);
    n = snprintf(NULL, 0, history_text, dir);
    if (n < 0 || !(text = malloc((size_t)n + 1)))
        abort();
    snprintf(text, (size_t)n + 1, history_text, dir);
    write_file(history_file, text, (size_t)n);
    free(text);
}

/* A network namespace of our own (only its loopback, brought up): nothing this
 * process does reaches another machine or another process's loopback server.
 * Called before any thread starts, so every later thread is in it. Where the
 * kernel refuses (no privilege, a container), the environment below still points
 * every download and proxy at a closed loopback port. */
static void own_network(void)
{
    struct ifreq ifr;
    int old = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), fd;

    if (unshare(CLONE_NEWNET) != 0) {
        fprintf(stderr,
                "fuzz_app: no network namespace of its own (%s): HF_ENDPOINT and the "
                "proxies point at a closed port\n",
                strerror(errno));
        if (old >= 0)
            close(old);
        return;
    }
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0 ||
        (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr)) != 0) {
        fprintf(stderr, "fuzz_app: no loopback in the new namespace (%s): back to the host's\n",
                strerror(errno));
        if (old < 0 || setns(old, CLONE_NEWNET) != 0)
            abort();
    }
    if (fd >= 0)
        close(fd);
    if (old >= 0)
        close(old);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* At exit: the temporary HOME goes (the server's threads are still there, idle). */
static void remove_root(void)
{
    if (root[0])
        nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A loopback port nothing listens on: bound, never listening (connects are refused). */
static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    return ntohs(a.sin_port); /* fd stays open for the run: the port stays ours */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const dirs[] = {"config", "data", "cache", "runtime", "hf"};
    char path[600], url[64];

    (void)argc, (void)argv;
    own_network();
    snprintf(root, sizeof(root), "%s/codictate-fuzz-app-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root))
        abort();
    atexit(remove_root);
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", root, dirs[i]);
        if (mkdir(path, 0700) != 0)
            abort();
    }
    setenv("HOME", root, 1);
    snprintf(path, sizeof(path), "%s/config", root);
    setenv("XDG_CONFIG_HOME", path, 1);
    snprintf(path, sizeof(path), "%s/data", root);
    setenv("XDG_DATA_HOME", path, 1);
    setenv("CODICTATE_DATA_DIR", path, 1);
    snprintf(path, sizeof(path), "%s/cache", root);
    setenv("XDG_CACHE_HOME", path, 1);
    snprintf(path, sizeof(path), "%s/runtime", root);
    setenv("XDG_RUNTIME_DIR", path, 1);
    snprintf(path, sizeof(path), "%s/hf", root);
    setenv("HF_HOME", path, 1);
    unsetenv("HF_HUB_CACHE");
    unsetenv("HF_TOKEN");
    unsetenv("LLAMA_CACHE");
    unsetenv("CODICTATE_CATALOG");
    unsetenv("OPENAI_API_KEY");
    unsetenv("OPENAI_BASE_URL");
    unsetenv("DISPLAY");
    unsetenv("WAYLAND_DISPLAY");
    setenv("CODICTATE_NO_BUILTIN_MODEL", "1", 1);
    snprintf(path, sizeof(path), "unix:%s/no-pulse", root);
    setenv("PULSE_SERVER", path, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", closed_port());
    setenv("HF_ENDPOINT", url, 1);
    for (const char *const *v = (const char *const[]){"http_proxy", "https_proxy", "all_proxy",
                                                      "HTTPS_PROXY", "ALL_PROXY", NULL};
         *v; v++)
        setenv(*v, url, 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    snprintf(sidecar_exe, sizeof(sidecar_exe), "%s/no-sidecar", root);

    snprintf(path, sizeof(path), "%s/data/rec.wav", root);
    write_wav(path);
    snprintf(history_file, sizeof(history_file), "%s/data/history.jsonl", root);
    seed_history();
    return 0;
}

static void start(void)
{
    struct cdt_app_params p = cdt_app_default_params();
    char err[1024], path[600];

    snprintf(path, sizeof(path), "%s/config", root);
    p.config_dir = strdup(path);
    snprintf(path, sizeof(path), "%s/data", root);
    p.data_dir = strdup(path);
    p.sidecar_exe = sidecar_exe;
    if (cdt_app_server_new(&p, 0, &server, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_app: %s\n", err);
        abort();
    }
    port = cdt_app_server_port(server);
    fuzz_signal_storm();
}

/* Sends a request with a body (of length n) and a correct Content-Length. */
static void send_request(int fd, const char *method, const char *path, size_t path_len,
                         const char *type, const uint8_t *body, size_t n)
{
    char head[512];
    int k = snprintf(head, sizeof(head), "%s ", method);

    fuzz_send_all(fd, head, (size_t)k);
    fuzz_send_all(fd, path, path_len);
    k = snprintf(head, sizeof(head),
                 " HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\nContent-Length: "
                 "%zu\r\nConnection: close\r\n\r\n",
                 port, type, n);
    fuzz_send_all(fd, head, (size_t)k);
    fuzz_send_all(fd, (const char *)body, n);
}

/* The first line of data (at most 200 bytes), '/'-led, spaces and controls as '_'. */
static size_t path_of(const uint8_t *data, size_t size, char *out, size_t cap)
{
    size_t n = 0;

    if (size == 0 || data[0] != '/')
        out[n++] = '/';
    for (size_t i = 0; i < size && data[i] != '\n' && n + 1 < cap; i++)
        out[n++] = data[i] <= ' ' || data[i] == 0x7f ? '_' : (char)data[i];
    out[n] = '\0';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[65536];
    char path[256];
    size_t got = 0;
    bool stream = false;
    int fd, mode;

    if (!server)
        start();
    if (size < 1)
        return 0;
    mode = data[0] % 5;
    data++;
    size--;

    fd = fuzz_connect("fuzz_app", port);
    if (mode == 0) {
        fuzz_send_all(fd, (const char *)data, size);
        shutdown(fd, SHUT_WR);
    } else if (mode == 1) {
        send_request(fd, "POST", "/api/settings", 13, "application/json", data, size);
    } else if (mode == 2) {
        send_request(fd, "POST", "/api/refine", 11, "application/json", data, size);
    } else {
        size_t pn = path_of(data, size, path, sizeof(path));
        const uint8_t *nl = memchr(data, '\n', size);
        size_t skip = nl ? (size_t)(nl - data) + 1 : size;

        if (mode == 3)
            send_request(fd, "POST", path, pn, "application/json", data + skip, size - skip);
        else
            send_request(fd, "GET", path, pn, "application/json", NULL, 0);
    }
    /* The answer, to its end (the server closes), or an event stream's first event. */
    for (;;) {
        ssize_t r = fuzz_recv("fuzz_app", fd, buf + got, sizeof(buf) - 1 - got);
        char *end;

        if (r <= 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (!stream)
            stream = end && memmem(buf, (size_t)(end - buf), "text/event-stream", 17);
        if (stream && end && strstr(end + 4, "\n\n"))
            break; /* the hello event: the stream itself never ends */
        if (!stream && got > sizeof(buf) / 2)
            got = 0; /* only a stream's start is looked at */
    }
    close(fd);
    /* The seeded history comes back for the next input (a delete removes entries). */
    {
        struct stat st;

        if (stat(history_file, &st) != 0 || st.st_size < (off_t)sizeof(history_text) - 8)
            seed_history();
    }
    return 0;
}
