/* SPDX-License-Identifier: Apache-2.0 */
/* The verbs of the CLI; each returns the process exit code. */
#pragma once

int cmd_run(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_exec_list(int argc, char **argv);
int cmd_exec_logs(int argc, char **argv);
int cmd_exec_kill(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_trust(int argc, char **argv);
int cmd_untrust(int argc, char **argv);
int cmd_extend_ttl(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_reconcile(int argc, char **argv);
int cmd_archive(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_resize(int argc, char **argv);
int cmd_update(int argc, char **argv);
int cmd_volume(int argc, char **argv);
int cmd_images(int argc, char **argv);
int cmd_pool(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_mcp_server(int argc, char **argv);
