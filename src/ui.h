/*
 * ui.h: the status page's files (src/ui/: index.html, app.js,
 * style.css, icon.svg), built into the binary (src/ui/embed.py writes them as C
 * data at build time) and served by http.c at GET / and GET /ui/NAME.
 * The page loads nothing from anywhere else (docs/http-api.md, "The
 * status page").
 */
#ifndef VA_UI_H
#define VA_UI_H

#include <stddef.h>

struct ui_asset {
	const char *name;          /* "app.js" */
	const char *content_type;  /* "text/javascript; charset=utf-8" */
	const unsigned char *data;
	size_t len;
};

/* The generated table (ui_assets.c). */
extern const struct ui_asset ui_assets[];
extern const size_t ui_n_assets;

/* The file called name, or NULL. */
const struct ui_asset *ui_asset_find(const char *name);

#endif
