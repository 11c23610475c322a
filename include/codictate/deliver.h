/* Delivering text to the desktop (application layer): the clipboard (wl-copy,
 * xclip, xsel) and typing into the focused window (wtype, xdotool, ydotool), the
 * tool of the session first. Used by `dictate --copy/--type` and by the app's
 * output setting. The text goes to the tool's stdin or argv, never to a log. */
#ifndef CODICTATE_DELIVER_H
#define CODICTATE_DELIVER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Copies text to the clipboard. Returns 0, or -1 with errmsg ("wl-copy not found
 * (install wl-clipboard)", "xclip failed", "no graphical session ..."). */
int cdt_deliver_copy(const char *text, char *errmsg, size_t errcap);

/* Types text into the focused window. Returns 0, or -1 with errmsg. */
int cdt_deliver_type(const char *text, char *errmsg, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
