// ckh_command.h — command components (SDK 1.2): another tool's command line, translated into ckhost's.
//
// A component of kind CKH_COMPONENT_COMMAND whose id is a command name (e.g. "mm-convert") makes
// `ckhost <id> ARGS...` hand ARGS to translate(). The command knows the other tool's flags, config files
// and environment; it never converts anything itself. It answers through `sink`, once, with a JSON object:
//   {"print": "text"}                        print the text to stdout and exit 0 (help, a printed config);
//   {"run": [["convert", SRC, DST, ...], ...]} run these ckhost command lines in order, as if typed; the
//                                             first one that fails ends the command with its status.
// A mistake in ARGS is a non-OK status with ckh_host_t.set_error's one-line message; nothing may be
// written before the host runs the command lines, which check everything again before any byte.
#ifndef CKHOST_CKH_COMMAND_H
#define CKHOST_CKH_COMMAND_H

#include <stdint.h>

#include "ckh_mapper.h"
#include "ckh_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckh_command_class {
  uint32_t struct_size;
  uint32_t reserved0;
  // argv[0..argc-1]: the arguments after the command name. `env` is the host's environment
  // (NULL-terminated "NAME=value" strings), for tools that read their options from it.
  ckh_status (*translate)(const struct ckh_command_class *cls, uint32_t argc, const char *const *argv,
                          const char *const *env, void *ctx, ckh_text_sink_fn sink);
} ckh_command_class_t;

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_COMMAND_H
