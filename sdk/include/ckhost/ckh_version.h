// ckh_version.h — ABI version of the ckhost SDK.
//
// CKH_ABI_MAJOR changes only on an incompatible change; the host refuses plugins of another major.
// CKH_ABI_MINOR grows when fields or extensions are appended; older plugins keep working and readers
// test struct_size (CKH_HAS_FIELD) before touching appended fields. See sdk/CHANGELOG.md.
#ifndef CKHOST_CKH_VERSION_H
#define CKHOST_CKH_VERSION_H

#define CKH_ABI_MAJOR 1
#define CKH_ABI_MINOR 2
#define CKH_SDK_VERSION_STRING "1.2.0"

#endif  // CKHOST_CKH_VERSION_H
