/* SPDX-License-Identifier: Apache-2.0 */
/* Image detection: upstream's table, first match wins, commands before project files. */
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <string.h>
#include <unistd.h>

#include "image/detect.h"
#include "shared/macro.h"

#define DETECT_MAX_ENTRIES 4096 /* a huge directory is not scanned past this */

struct rule {
        const char *image;
        const char *const *files;    /* names or *.ext patterns */
        const char *const *commands; /* basenames */
};

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static const struct rule rules[] = {
    {"node:22-alpine",
     L("package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb"),
     L("node", "npm", "npx", "yarn", "pnpm", "bun", "tsx", "ts-node")},
    {"rust:1.85-alpine", L("Cargo.toml", "Cargo.lock"),
     L("cargo", "rustc", "rustup", "rustfmt", "clippy")},
    {"golang:1.23-alpine", L("go.mod", "go.sum"), L("go", "gofmt")},
    {"python:3.12-alpine",
     L("pyproject.toml", "requirements.txt", "setup.py", "setup.cfg", "Pipfile", "poetry.lock",
       "uv.lock"),
     L("python", "python3", "pip", "pip3", "poetry", "uv", "pytest", "ruff")},
    {"ruby:3.3-alpine", L("Gemfile", "Gemfile.lock", "*.gemspec"),
     L("ruby", "gem", "bundle", "bundler", "rake", "rails")},
    {"eclipse-temurin:21-alpine",
     L("pom.xml", "build.gradle", "build.gradle.kts", "settings.gradle", "*.kt"),
     L("java", "javac", "mvn", "gradle", "gradlew")},
    {"mcr.microsoft.com/dotnet/sdk:8.0", L("*.csproj", "*.fsproj", "*.sln", "global.json"),
     L("dotnet", "csc", "fsc")},
    {"gcc:14-bookworm", L("Makefile", "CMakeLists.txt", "configure", "*.c", "*.cpp", "*.h"),
     L("gcc", "g++", "clang", "clang++", "make", "cmake", "cc")},
    {"php:8.3-alpine", L("composer.json", "composer.lock", "*.php"), L("php", "composer")},
    {"elixir:1.16-alpine", L("mix.exs", "mix.lock"), L("elixir", "mix", "iex")},
    /* upstream's row for shells and *.sh, alpine, is its default image: ours is `host` */
    {"nickblah/lua:5.4-alpine", L("*.lua", ".luacheckrc"), L("lua", "luajit", "luarocks")},
    {"hashicorp/terraform:1.10", L("*.tf", "*.tfvars", "terraform.tfstate"), L("terraform")},
};

const char *image_detect_command(const char *argv0)
{
        const char *base;

        if (!argv0)
                return NULL;
        base = strrchr(argv0, '/');
        base = base ? base + 1 : argv0;
        for (size_t i = 0; i < ARRAY_SIZE(rules); i++)
                for (const char *const *c = rules[i].commands; *c; c++)
                        if (streq(base, *c))
                                return rules[i].image;
        return NULL;
}

/* The index of the first rule (below limit) that names file, or limit. */
static size_t rule_for_file(const char *file, size_t limit)
{
        for (size_t i = 0; i < limit; i++)
                for (const char *const *f = rules[i].files; *f; f++)
                        if ((**f == '*' ? fnmatch(*f, file, FNM_PERIOD) : strcmp(*f, file)) == 0)
                                return i;
        return limit;
}

const char *image_detect_project(int dirfd)
{
        size_t best = ARRAY_SIZE(rules), seen = 0;
        struct dirent *de;
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

        if (!d) {
                if (fd >= 0)
                        close(fd);
                return NULL;
        }
        while (best > 0 && seen++ < DETECT_MAX_ENTRIES && (de = readdir(d)))
                best = rule_for_file(de->d_name, best);
        closedir(d);
        return best < ARRAY_SIZE(rules) ? rules[best].image : NULL;
}
