/* Text shown on a terminal while it is generated (cli.h, struct cdt_cli_live): the
 * model's raw pieces appear dimmed as they come; at the end they are erased and the
 * text to deliver (the guarded output, or the deterministic text) is printed in
 * their place. Only on a terminal: piped output gets the final text alone. */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

void cdt_cli_live_init(struct cdt_cli_live *l, bool on)
{
    struct winsize ws;

    memset(l, 0, sizeof(*l));
    l->on = on;
    l->cols = on && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

/* Writes a piece dimmed, control characters as '?' (a model's bytes must not drive
 * the terminal), and counts the rows it wraps to. */
void cdt_cli_live_piece(const char *text, size_t len, void *user_data)
{
    struct cdt_cli_live *l = user_data;

    if (!l->on || !len)
        return;
    if (!l->shown)
        fputs("\033[2m", stdout);
    l->shown = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c == '\n') {
            l->rows++;
            l->col = 0;
            fputc('\n', stdout);
            continue;
        }
        if (c < 0x20 || c == 0x7f)
            c = '?';
        if ((c & 0xC0) != 0x80 && ++l->col > l->cols) { /* a character, not a continuation */
            l->rows++;
            l->col = 1;
        }
        fputc(c, stdout);
    }
    fflush(stdout);
}

void cdt_cli_live_finish(struct cdt_cli_live *l, const char *final)
{
    if (l->on && l->shown) {
        fputs("\033[0m", stdout);
        if (l->rows > 0)
            printf("\033[%dA", l->rows);
        fputs("\r\033[J", stdout);
    }
    if (final && final[0])
        puts(final);
    fflush(stdout);
    l->shown = false;
    l->rows = l->col = 0;
}
