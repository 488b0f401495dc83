/*
 * ui.c: see ui.h.
 */
#include <string.h>

#include "ui.h"

const struct ui_asset *
ui_asset_find(const char *name)
{
	for (size_t i = 0; i < ui_n_assets; i++)
		if (strcmp(ui_assets[i].name, name) == 0)
			return &ui_assets[i];
	return NULL;
}
