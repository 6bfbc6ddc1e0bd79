/*
 * text.h - the host's text services behind cpar_host_t.render_template, .shell_join and
 * .regex_search: ipyparallel's batch-template rendering, Python's shlex.join and Python's
 * re.search, in C. Results are malloc'd; on failure a one-line reason goes to `why`.
 */
#ifndef CPAR_PLUGINS_TEXT_H
#define CPAR_PLUGINS_TEXT_H

#include <stddef.h>

#include <cparallel/plugin.h>

int cpar_text_render(const char *tmpl, const cpar_tvar_t *vars, size_t nvars, char **out, char *why,
                     size_t whylen);
int cpar_text_shell_join(const char *const *argv, char **out);
/* Python shlex.quote of one word (malloc'd), or NULL when out of memory. */
char *cpar_text_shell_quote(const char *word);
int cpar_text_regex_search(const char *pattern, const char *text, int group, char **match,
                           char *why, size_t whylen);

#endif /* CPAR_PLUGINS_TEXT_H */
