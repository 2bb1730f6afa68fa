/* plot.c — the sweep chart of s2s/plot.h: two panels (accuracy, mean scores) drawn as SVG 1.1
 * by hand, so the bytes are ours to keep deterministic and nothing beyond libc is needed. */
#include "s2s/plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Geometry (pixels). Both panels share the plot area's x range; the legend sits at the right. */
enum { W = 820, H = 800, PL = 80, PR = 600, LEGX = 625 };
static const double panel_top[2] = {70, 450}, panel_bot[2] = {330, 710};

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                      "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"};
#define NPALETTE (sizeof palette / sizeof palette[0])

static const char *const known_modes[] = {"t2t", "s2t", "t2s", "s2s"};

typedef struct run {
    const char *label;
    const json_t *report; /* NULL: no values */
    double x;             /* numeric value, or position for categories */
    size_t order;         /* index in the user's list (stable sort key) */
} run;

typedef struct plot {
    FILE *fp;
    run *runs;
    size_t n;
    int numeric;
    double xlo, xhi;
    const char **modes;
    size_t nmodes;
} plot;

/* Two decimals, without a "-0.00". */
static double c2(double v) {
    double r = round(v * 100.0) / 100.0;
    return r == 0 ? 0.0 : r;
}

/* Writes s with XML's five special characters escaped; control characters (invalid in XML 1.0)
 * become '?'. max > 0 truncates to max code points with an ellipsis. */
static void put_esc(FILE *fp, const char *s, size_t max) {
    size_t cps = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) != 0x80) { /* a code point starts here */
            if (max && cps == max) {
                fputs("\xe2\x80\xa6", fp); /* U+2026 */
                return;
            }
            cps++;
        }
        switch (*p) {
        case '&':
            fputs("&amp;", fp);
            break;
        case '<':
            fputs("&lt;", fp);
            break;
        case '>':
            fputs("&gt;", fp);
            break;
        case '"':
            fputs("&quot;", fp);
            break;
        case '\'':
            fputs("&apos;", fp);
            break;
        default:
            if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
                fputc('?', fp);
            else
                fputc(*p, fp);
        }
    }
}

/* modes.M.field of a run as a finite number; 0 when null, missing or not finite. */
static int get_num(const run *r, const char *mode, const char *field, double *v) {
    if (!r->report) return 0;
    json_t *j = json_object_get(json_object_get(json_object_get(r->report, "modes"), mode), field);
    if (!json_is_number(j)) return 0;
    *v = json_number_value(j);
    return isfinite(*v);
}

static int get_ci(const run *r, const char *mode, double *lo, double *hi) {
    if (!r->report) return 0;
    json_t *j = json_object_get(json_object_get(json_object_get(r->report, "modes"), mode), "ci95");
    if (!json_is_array(j) || json_array_size(j) != 2) return 0;
    json_t *a = json_array_get(j, 0), *b = json_array_get(j, 1);
    if (!json_is_number(a) || !json_is_number(b)) return 0;
    *lo = json_number_value(a);
    *hi = json_number_value(b);
    return isfinite(*lo) && isfinite(*hi);
}

static int parse_number(const char *s, double *v) {
    if (!*s || *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '\v')
        return 0;
    char *end;
    *v = strtod(s, &end);
    return *end == 0 && isfinite(*v);
}

static int cmp_runs(const void *a, const void *b) {
    const run *x = a, *y = b;
    if (x->x != y->x) return x->x < y->x ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* A 1-2-5 step that cuts range into about `target` intervals. */
static double nice_step(double range, int target) {
    double raw = range / target;
    double p = pow(10.0, floor(log10(raw)));
    double f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

static int step_decimals(double step) {
    if (step >= 1) return 0;
    int d = (int)ceil(-log10(step) - 1e-9);
    return d > 12 ? 12 : d;
}

/* Expands [*lo, *hi] to whole steps (an empty range gets some room first). */
static double nice_range(double *lo, double *hi) {
    if (!(*hi > *lo)) {
        double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 0.5;
        *lo -= d;
        *hi += d;
    }
    double step = nice_step(*hi - *lo, 5);
    *lo = floor(*lo / step + 1e-9) * step;
    *hi = ceil(*hi / step - 1e-9) * step;
    return step;
}

static double px_x(const plot *p, const run *r) {
    if (!p->numeric) return PL + (r->x + 0.5) * (PR - PL) / (double)p->n;
    return PL + (r->x - p->xlo) / (p->xhi - p->xlo) * (PR - PL);
}

static double px_y(int panel, double v, double lo, double hi) {
    return panel_bot[panel] - (v - lo) / (hi - lo) * (panel_bot[panel] - panel_top[panel]);
}

static void put_tick_value(FILE *fp, double v, int dec) {
    double r = v;
    if (fabs(r) < 1e-12 * (fabs(v) + 1)) r = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%.*f", dec, r);
    if (!strcmp(buf, "-0") || !strncmp(buf, "-0.", 3)) { /* "-0.00" -> "0.00" */
        int zero = 1;
        for (const char *c = buf + 1; *c; c++)
            if (*c != '0' && *c != '.') zero = 0;
        if (zero) memmove(buf, buf + 1, strlen(buf));
    }
    fputs(buf, fp);
}

/* Frame, grid, y ticks, x ticks and labels of one panel. */
static void axes(const plot *p, int panel, double ylo, double yhi, double ystep, const char *title,
                 const char *ytitle) {
    FILE *fp = p->fp;
    double top = panel_top[panel], bot = panel_bot[panel];
    fprintf(fp, "<g class=\"axes\" data-panel=\"%d\">\n", panel + 1);
    fprintf(fp, "<text x=\"%d\" y=\"%.2f\" font-size=\"14\" font-weight=\"bold\">", PL, top - 12);
    put_esc(fp, title, 0);
    fputs("</text>\n", fp);
    int dec = step_decimals(ystep);
    for (long k = (long)ceil(ylo / ystep - 1e-9); k * ystep <= yhi + 1e-9 * ystep; k++) {
        double v = k * ystep, y = c2(px_y(panel, v, ylo, yhi));
        fprintf(fp,
                "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#e6e6e6\"/>"
                "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#000\"/>"
                "<text x=\"%d\" y=\"%.2f\" font-size=\"11\" text-anchor=\"end\">",
                PL, y, PR, y, PL - 5, y, PL, y, PL - 8, c2(y + 4));
        put_tick_value(fp, v, dec);
        fputs("</text>\n", fp);
    }
    if (p->numeric) {
        double step = nice_step(p->xhi - p->xlo, 6);
        int xdec = step_decimals(step);
        for (long k = (long)ceil(p->xlo / step - 1e-9); k * step <= p->xhi + 1e-9 * step; k++) {
            double v = k * step;
            double x = c2(PL + (v - p->xlo) / (p->xhi - p->xlo) * (PR - PL));
            fprintf(fp,
                    "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000\"/>"
                    "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"middle\">",
                    x, bot, x, bot + 5, x, bot + 18);
            put_tick_value(fp, v, xdec);
            fputs("</text>\n", fp);
        }
    } else {
        int rotate = p->n > 6;
        for (size_t i = 0; i < p->n; i++) {
            double x = c2(px_x(p, &p->runs[i]));
            fprintf(fp, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000\"/>",
                    x, bot, x, bot + 5);
            if (rotate)
                fprintf(fp,
                        "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"end\" "
                        "transform=\"rotate(-35 %.2f %.2f)\">",
                        x, bot + 16, x, bot + 16);
            else
                fprintf(fp, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"middle\">",
                        x, bot + 18);
            fputs("<title>", fp);
            put_esc(fp, p->runs[i].label, 0);
            fputs("</title>", fp);
            put_esc(fp, p->runs[i].label,
                    rotate ? 14 : (size_t)((PR - PL) / 6.5 / (double)p->n) + 1);
            fputs("</text>\n", fp);
        }
    }
    fprintf(fp,
            "<rect x=\"%d\" y=\"%.2f\" width=\"%d\" height=\"%.2f\" fill=\"none\" "
            "stroke=\"#000\"/>\n",
            PL, top, PR - PL, bot - top);
    fprintf(fp,
            "<text x=\"20\" y=\"%.2f\" font-size=\"12\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 20 %.2f)\">",
            c2((top + bot) / 2), c2((top + bot) / 2));
    put_esc(fp, ytitle, 0);
    fputs("</text>\n</g>\n", fp);
}

/* One curve: polylines over runs of consecutive non-null points, a marker on every point (a
 * single point still shows), CI whiskers for accuracy. */
static void curve(const plot *p, int panel, size_t m, const char *series, const char *field,
                  double ylo, double yhi, int dashed, int whiskers) {
    FILE *fp = p->fp;
    const char *mode = p->modes[m], *color = palette[m % NPALETTE];
    fputs("<g class=\"curve\" data-mode=\"", fp);
    put_esc(fp, mode, 0);
    fprintf(fp, "\" data-series=\"%s\" stroke=\"%s\" fill=\"none\" stroke-width=\"2\"%s>\n", series,
            color, dashed ? " stroke-dasharray=\"6 4\"" : "");
    fputs("<title>", fp);
    put_esc(fp, mode, 0);
    fprintf(fp, " %s</title>\n", series);
    size_t i = 0;
    while (i < p->n) {
        double v;
        if (!get_num(&p->runs[i], mode, field, &v)) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < p->n && get_num(&p->runs[j], mode, field, &v))
            j++;
        if (j - i >= 2) {
            fputs("<polyline points=\"", fp);
            for (size_t k = i; k < j; k++) {
                get_num(&p->runs[k], mode, field, &v);
                fprintf(fp, "%s%.2f,%.2f", k > i ? " " : "", c2(px_x(p, &p->runs[k])),
                        c2(px_y(panel, v, ylo, yhi)));
            }
            fputs("\"/>\n", fp);
        }
        i = j;
    }
    for (i = 0; i < p->n; i++) {
        const run *r = &p->runs[i];
        double v, lo, hi;
        if (!get_num(r, mode, field, &v)) continue;
        double x = c2(px_x(p, r)), y = c2(px_y(panel, v, ylo, yhi));
        int ci = whiskers && get_ci(r, mode, &lo, &hi);
        if (ci) {
            double y0 = c2(px_y(panel, lo, ylo, yhi)), y1 = c2(px_y(panel, hi, ylo, yhi));
            fprintf(fp,
                    "<path class=\"ci\" stroke-width=\"1.2\" d=\"M%.2f %.2fV%.2fM%.2f %.2fH%.2f"
                    "M%.2f %.2fH%.2f\"/>\n",
                    x, y0, y1, c2(x - 4), y0, c2(x + 4), c2(x - 4), y1, c2(x + 4));
        }
        fprintf(fp,
                "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" fill=\"%s\" stroke-dasharray=\"none\">",
                x, y, dashed ? "#fff" : color);
        fputs("<title>", fp);
        put_esc(fp, r->label, 0);
        fputs(": ", fp);
        put_esc(fp, mode, 0);
        fprintf(fp, " %s %.4f", series, v);
        if (ci) fprintf(fp, " [%.4f, %.4f]", lo, hi);
        fputs("</title></circle>\n", fp);
    }
    fputs("</g>\n", fp);
}

static void legend(const plot *p) {
    FILE *fp = p->fp;
    double y = panel_top[0] + 10;
    fputs("<g class=\"legend\" font-size=\"12\">\n", fp);
    for (size_t m = 0; m < p->nmodes; m++) {
        const char *color = palette[m % NPALETTE];
        fprintf(fp,
                "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"%s\" "
                "stroke-width=\"2\"/><circle class=\"key\" cx=\"%d\" cy=\"%.2f\" r=\"3.5\" "
                "fill=\"%s\"/>"
                "<text x=\"%d\" y=\"%.2f\">",
                LEGX, y, LEGX + 28, y, color, LEGX + 14, y, color, LEGX + 36, y + 4);
        put_esc(fp, p->modes[m], 0);
        fputs("</text>\n", fp);
        y += 20;
    }
    y += 10;
    fprintf(fp,
            "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#888\" "
            "stroke-dasharray=\"2 3\"/><text x=\"%d\" y=\"%.2f\">chance (0.5)</text>\n",
            LEGX, y, LEGX + 28, y, LEGX + 36, y + 4);
    y += 20;
    fprintf(fp,
            "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#000\" "
            "stroke-width=\"1.2\"/><text x=\"%d\" y=\"%.2f\">95%% CI</text>\n",
            LEGX + 14, y - 6, LEGX + 14, y + 6, LEGX + 36, y + 4);
    y = panel_top[1] + 10;
    fprintf(fp,
            "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#000\" "
            "stroke-width=\"2\"/><text x=\"%d\" y=\"%.2f\">plausible</text>\n",
            LEGX, y, LEGX + 28, y, LEGX + 36, y + 4);
    y += 20;
    fprintf(fp,
            "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#000\" stroke-width=\"2\" "
            "stroke-dasharray=\"6 4\"/><text x=\"%d\" y=\"%.2f\">implausible</text>\n",
            LEGX, y, LEGX + 28, y, LEGX + 36, y + 4);
    y += 20;
    fprintf(fp,
            "<text x=\"%d\" y=\"%.2f\" font-style=\"italic\">lower score = more likely</text>\n",
            LEGX, y + 4);
    fputs("</g>\n", fp);
}

static int add_mode(plot *p, const char *name) {
    for (size_t i = 0; i < p->nmodes; i++)
        if (!strcmp(p->modes[i], name)) return 0;
    const char **nm = realloc(p->modes, (p->nmodes + 1) * sizeof *nm);
    if (!nm) return -1;
    p->modes = nm;
    p->modes[p->nmodes++] = name;
    return 0;
}

/* What the panel 2 y axis shows, from the runs' decision_score. */
static const char *score_title(const plot *p) {
    const char *ds = NULL;
    for (size_t i = 0; i < p->n; i++) {
        const char *d = json_string_value(json_object_get(p->runs[i].report, "decision_score"));
        if (!d) continue;
        if (ds && strcmp(ds, d) != 0) return "mean decision score (mixed kinds!)";
        ds = d;
    }
    if (!ds || !strcmp(ds, "mean")) return "mean score: NLL per token";
    if (!strcmp(ds, "sum")) return "mean score: summed NLL";
    if (!strcmp(ds, "byte")) return "mean score: NLL per byte";
    return "mean decision score";
}

int s2s_plot_sweep_svg(const json_t *sweep, FILE *fp, s2s_err *err) {
    if (!json_is_array(sweep))
        return s2s_err_set(err, S2S_EINVAL, "sweep: expected a JSON array of {label, report}");
    size_t n = json_array_size(sweep);
    if (!n) return s2s_err_set(err, S2S_EINVAL, "sweep: no runs to plot");
    plot p = {.fp = fp, .n = n, .numeric = 1};
    p.runs = calloc(n, sizeof *p.runs);
    if (!p.runs) return s2s_err_set(err, S2S_ENOMEM, "plot: out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const json_t *e = json_array_get(sweep, i);
        const char *label = json_string_value(json_object_get(e, "label"));
        const json_t *rep = json_object_get(e, "report");
        if (!label)
            rc = s2s_err_set(err, S2S_EINVAL, "sweep[%zu]: no string \"label\"", i);
        else if (rep && !json_is_null(rep) && !json_is_object(rep))
            rc = s2s_err_set(err, S2S_EINVAL, "sweep[%zu] (%s): \"report\" is not an object", i,
                             label);
        else {
            p.runs[i] = (run){label, json_is_object(rep) ? rep : NULL, 0, i};
            if (!parse_number(label, &p.runs[i].x)) p.numeric = 0;
        }
    }
    for (size_t k = 0; k < 4 && !rc; k++)
        for (size_t i = 0; i < n; i++)
            if (json_object_get(json_object_get(p.runs[i].report, "modes"), known_modes[k])) {
                if (add_mode(&p, known_modes[k])) rc = S2S_ENOMEM;
                break;
            }
    for (size_t i = 0; i < n && !rc; i++) {
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(p.runs[i].report, "modes"), key, v) {
            if (json_is_object(v) && add_mode(&p, key)) {
                rc = S2S_ENOMEM;
                break;
            }
        }
    }
    if (rc == S2S_ENOMEM) s2s_err_set(err, rc, "plot: out of memory");
    if (rc) {
        free(p.runs);
        free(p.modes);
        return rc;
    }
    if (p.numeric) {
        qsort(p.runs, n, sizeof *p.runs, cmp_runs);
        p.xlo = p.runs[0].x;
        p.xhi = p.runs[n - 1].x;
        if (p.xhi > p.xlo) {
            double pad = 0.06 * (p.xhi - p.xlo);
            p.xlo -= pad;
            p.xhi += pad;
        } else {
            double d = fabs(p.xlo) > 0 ? fabs(p.xlo) * 0.1 : 1;
            p.xlo -= d;
            p.xhi += d;
        }
    } else
        for (size_t i = 0; i < n; i++)
            p.runs[i].x = (double)i;

    /* y ranges: accuracy [0, 1] (wider only if a value lies outside); scores from the data */
    double alo = 0, ahi = 1, slo = INFINITY, shi = -INFINITY;
    static const char *const sfields[2] = {"mean_score_plausible", "mean_score_implausible"};
    for (size_t m = 0; m < p.nmodes; m++)
        for (size_t i = 0; i < n; i++) {
            double v, lo, hi;
            if (get_num(&p.runs[i], p.modes[m], "accuracy", &v)) {
                alo = fmin(alo, v);
                ahi = fmax(ahi, v);
            }
            if (get_ci(&p.runs[i], p.modes[m], &lo, &hi)) {
                alo = fmin(alo, fmin(lo, hi));
                ahi = fmax(ahi, fmax(lo, hi));
            }
            for (int f = 0; f < 2; f++)
                if (get_num(&p.runs[i], p.modes[m], sfields[f], &v)) {
                    slo = fmin(slo, v);
                    shi = fmax(shi, v);
                }
        }
    double astep = (alo == 0 && ahi == 1) ? 0.1 : nice_range(&alo, &ahi);
    if (!isfinite(slo)) slo = 0, shi = 1;
    double sstep = nice_range(&slo, &shi);

    fprintf(fp,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
            "<title>s2s-score sweep: accuracy and mean scores of %zu run%s</title>\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n"
            "<text x=\"%d\" y=\"28\" font-size=\"17\" font-weight=\"bold\" text-anchor=\"middle\">"
            "s2s-score sweep: %zu run%s, %zu mode%s</text>\n",
            W, H, W, H, n, n == 1 ? "" : "s", W, H, W / 2, n, n == 1 ? "" : "s", p.nmodes,
            p.nmodes == 1 ? "" : "s");
    axes(&p, 0, alo, ahi, astep, "Accuracy per mode (pairs won; whiskers: 95% CI)", "accuracy");
    double ch = c2(px_y(0, 0.5, alo, ahi));
    fprintf(fp,
            "<line class=\"chance\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#888\" "
            "stroke-dasharray=\"2 3\"/>\n",
            PL, ch, PR, ch);
    for (size_t m = 0; m < p.nmodes; m++)
        curve(&p, 0, m, "accuracy", "accuracy", alo, ahi, 0, 1);
    axes(&p, 1, slo, shi, sstep,
         "Mean decision score of plausible (solid) and implausible (dashed) candidates",
         score_title(&p));
    for (size_t m = 0; m < p.nmodes; m++) {
        curve(&p, 1, m, "plausible", sfields[0], slo, shi, 0, 0);
        curve(&p, 1, m, "implausible", sfields[1], slo, shi, 1, 0);
    }
    legend(&p);
    fprintf(fp, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
            (PL + PR) / 2, H - 8, p.numeric ? "run (numeric label)" : "run");
    fputs("</svg>\n", fp);
    free(p.runs);
    free(p.modes);
    if (ferror(fp) || fflush(fp) != 0) return s2s_err_errno(err, "plot: writing the SVG failed");
    return 0;
}
