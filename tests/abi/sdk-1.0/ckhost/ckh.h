// ckh.h — umbrella header of the ckhost plugin SDK (C99, stable ABI). See sdk/README.md.
#ifndef CKHOST_CKH_H
#define CKHOST_CKH_H
#include "ckh_macros.h"
#include "ckh_version.h"
#include "ckh_types.h"
#include "ckh_kernels.h"
#include "ckh_host.h"
#include "ckh_expr.h"
#include "ckh_reader.h"
#include "ckh_writer.h"
#include "ckh_mapper.h"
#include "ckh_quantizer.h"
#include "ckh_plugin.h"
#endif  // CKHOST_CKH_H
