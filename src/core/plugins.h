/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plugging agentkernel into coding agents (`plugin install|list`, upstream's installer): the files
 * each agent reads to find our MCP server (and Claude Code's skill and command, OpenCode's
 * plugin), written into a project directory or the home, merged into what is there, never
 * clobbering what we did not write, and never through a symbolic link: a cloned repository is
 * not trusted to say where its `.mcp.json` really is.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"

struct plugin_file;

struct plugin_target {
        const char *name;
        const char *const *aliases; /* NULL-terminated */
        const char *description;
        bool project_only; /* no --global */
        const struct plugin_file *files;
        size_t n_files;
        const char *next_steps; /* printed after an install */
};

enum plugin_outcome {
        PLUGIN_CREATED, /* written where there was nothing */
        PLUGIN_MERGED,  /* our entry added to (or replaced in) an existing file */
        PLUGIN_UP_TO_DATE,
        PLUGIN_SKIPPED, /* something else is there: --force replaces it */
        PLUGIN_FAILED,
};

struct plugin_report {
        char path[PATH_MAX]; /* relative to the root */
        enum plugin_outcome outcome;
        char why[256]; /* for SKIPPED and FAILED */
};

#define PLUGIN_FILES_MAX 4 /* files of one target */

/* The targets in upstream's order (claude, codex, gemini, opencode, mcp); *ret_n of them. */
const struct plugin_target *plugin_targets(size_t *ret_n);

/* The target called name or one of its aliases, case-insensitively; NULL if none. */
const struct plugin_target *plugin_target_find(const char *name);

/* Installs t's files under root (a directory: the project, or the home with --global). dry_run:
 * reports what would happen and writes nothing. force: replaces files and entries that differ
 * from ours. Fills reps (PLUGIN_FILES_MAX) and *ret_n; returns 0, or -EINVAL with err set when the
 * root cannot be used at all. A file that fails is reported (PLUGIN_FAILED), the others done. */
int plugin_install(const struct plugin_target *t, const char *root, bool force, bool dry_run,
                   struct plugin_report reps[PLUGIN_FILES_MAX], size_t *ret_n, struct ak_err *err);

/* Whether every file of t is under root with our entry in it (upstream's `plugin list`). */
bool plugin_installed(const struct plugin_target *t, const char *root);
