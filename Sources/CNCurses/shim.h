#ifndef SWITCHYARD_CNCURSES_SHIM_H
#define SWITCHYARD_CNCURSES_SHIM_H

// SwiftPM drops -D_XOPEN_SOURCE from pkg-config, so ask for the wide API here.
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <locale.h>
#include <ncurses.h>

// Global curses state is shared mutable C state; Swift 6 reads it through these.
static inline WINDOW *sy_stdscr(void) { return stdscr; }
static inline int sy_lines(void) { return LINES; }
static inline int sy_cols(void) { return COLS; }
static inline int sy_colors(void) { return COLORS; }
static inline int sy_color_pairs(void) { return COLOR_PAIRS; }
static inline int sy_getmaxy(WINDOW *w) { return getmaxy(w); }
static inline int sy_getmaxx(WINDOW *w) { return getmaxx(w); }

#endif
