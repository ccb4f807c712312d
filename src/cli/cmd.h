/* SPDX-License-Identifier: Apache-2.0 */
/* The verbs of the CLI, each defined (with its options and help) in its cmd-*.c; main.c lists
 * them in the order `agentkernel --help` shows. */
#pragma once

#include "cli/parse-options.h"

extern const struct verb verb_run, verb_create, verb_start, verb_stop, verb_remove, verb_rm,
    verb_pause, verb_suspend, verb_resume, verb_list, verb_ls, verb_info, verb_exec, verb_attach,
    verb_exec_list, verb_exec_logs, verb_exec_kill, verb_extend_ttl, verb_gc, verb_reconcile,
    verb_archive, verb_recover, verb_resize, verb_update, verb_cp, verb_init, verb_trust,
    verb_untrust, verb_audit, verb_volume, verb_images, verb_network, verb_secret, verb_pool,
    verb_serve, verb_mcp_server, verb_doctor, verb_completions, verb_complete, verb_plugin,
    verb_agents, verb_stats, verb_clean, verb_export_config, verb_import_config, verb_export,
    verb_template, verb_setup;

/* `clean --all`: forgets every image of the native store that no sandbox uses, then prunes it.
 * Returns an exit code; *ret_removed names forgotten. */
int images_remove_unused(unsigned *ret_removed);

/* The top-level verbs (main.c's table, NULL-terminated): what completion walks. */
const struct verb *const *cli_verbs(void);
