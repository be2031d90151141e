#ifndef SWITCHYARD_CNCURSES_SHIM_H
#define SWITCHYARD_CNCURSES_SHIM_H

// SwiftPM drops -D_XOPEN_SOURCE from pkg-config, so ask for the wide API here.
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <locale.h>
#include <wchar.h>
#include <ncurses.h>

// Global curses state is shared mutable C state, and many curses names are macros that
// Swift cannot import; Swift reaches them through these functions.
static inline WINDOW *sy_stdscr(void) { return stdscr; }
static inline int sy_lines(void) { return LINES; }
static inline int sy_cols(void) { return COLS; }
static inline int sy_colors(void) { return COLORS; }
static inline int sy_color_pairs(void) { return COLOR_PAIRS; }
static inline int sy_getmaxy(WINDOW *w) { return getmaxy(w); }
static inline int sy_getmaxx(WINDOW *w) { return getmaxx(w); }

static inline attr_t sy_a_normal(void) { return A_NORMAL; }
static inline attr_t sy_a_bold(void) { return A_BOLD; }
static inline attr_t sy_a_dim(void) { return A_DIM; }
static inline attr_t sy_a_italic(void) { return A_ITALIC; }
static inline attr_t sy_a_underline(void) { return A_UNDERLINE; }
static inline attr_t sy_a_reverse(void) { return A_REVERSE; }
static inline attr_t sy_color_pair(int pair) { return COLOR_PAIR(pair); }

/// Draws `text` (wide characters) at y, x with `attrs` and colour pair `pair`.
static inline int sy_draw(int y, int x, const wchar_t *text, int length, attr_t attrs, short pair) {
    attr_set(attrs, pair, NULL);
    return mvaddnwstr(y, x, text, length);
}

static inline int sy_get_wch(int *key, int *is_function_key) {
    wint_t ch = 0;
    int rc = get_wch(&ch);
    *key = (int)ch;
    *is_function_key = (rc == KEY_CODE_YES);
    return rc;
}

#endif
