/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upstream's image detection (reference/upstream.md §9): the image a command or a project
 * suggests, e.g. `python3 ...` or a pyproject.toml -> python:3.12-alpine. Only a suggestion: the
 * caller decides whether to use it (see docs/images.md for the rule).
 */
#pragma once

/* The image suggested by argv[0]'s basename, or NULL. */
const char *image_detect_command(const char *argv0);

/* The image suggested by the project files in directory dirfd (first table row that matches
 * any of its files), or NULL. Reads the directory once. */
const char *image_detect_project(int dirfd);
