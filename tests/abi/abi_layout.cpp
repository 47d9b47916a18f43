// The same layout pins, checked by a C++ compiler (static_assert) for each C++ standard.
#include "abi_layout.c"
