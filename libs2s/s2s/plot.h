/* s2s/plot.h — charts of scorer results as self-contained SVG files.
 *
 * A sweep is a list of runs of s2s-score (checkpoints of one model, n-gram orders, voices ...),
 * each with a label and its report.json (docs/score.md). The chart has two panels that share the
 * x axis (the labels): the accuracy of every mode with its 95 % CI and the 0.5 chance line, and
 * the mean decision score of the plausible (solid) and implausible (dashed) candidates.
 *
 * The SVG is plain SVG 1.1 (no script, no external font or style sheet), opens in any browser,
 * and is byte-identical for the same input (coordinates printed with two decimals). Each curve is
 * a group `<g class="curve" data-mode="M" data-series="S">` with S one of accuracy, plausible,
 * implausible, so tools and tests can find them. */
#ifndef S2S_PLOT_H
#define S2S_PLOT_H

#include <jansson.h>
#include <stdio.h>

#include "s2s/err.h"

/* Writes the sweep chart to fp.
 *
 * sweep: a JSON array of {"label": STRING, "report": R}, R a single-model report.json object
 * (modes.M.accuracy, modes.M.ci95, modes.M.mean_score_plausible, modes.M.mean_score_implausible,
 * decision_score are read; any may be null or missing: a gap in that curve; a null R is a run
 * with no values). If every label is a number (strtod takes the whole string), the x axis is
 * numeric and the runs are sorted by value; otherwise the labels are categories in the given
 * order. Modes are drawn in the order t2t, s2t, t2s, s2s, then any other mode by first
 * appearance. Labels are XML-escaped.
 *
 * Returns 0, S2S_EINVAL (not an array, empty, an element without a string label or with a
 * report that is not an object or null; the message names the element), S2S_ENOMEM, or S2S_EIO
 * when writing fp failed. The caller owns fp (not closed here). */
int s2s_plot_sweep_svg(const json_t *sweep, FILE *fp, s2s_err *err);

#endif
