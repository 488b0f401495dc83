/*
 * simplot.h: an SVG chart of a simulation, written by hand as text:
 * demand and ready capacity (requests/s) over time in the upper panel,
 * the VM count (and the prepared warm instances) in the lower one,
 * downsampled to a readable width.
 */
#ifndef VA_SIMPLOT_H
#define VA_SIMPLOT_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct sim_plot;

/* For a trace of n seconds and VMs of `capacity` requests/s. */
struct sim_plot *sim_plot_new(uint64_t n, double capacity);
void sim_plot_free(struct sim_plot *pl);

/* Feed every second in order (a sim_options.on_second observer). */
void sim_plot_second(void *pl, uint64_t t, uint32_t demand, int ready,
		     int vms, int warm);

/* Append the SVG document to out; title is escaped. */
void sim_plot_svg(const struct sim_plot *pl, const char *title,
		  struct strbuf *out);

#endif
