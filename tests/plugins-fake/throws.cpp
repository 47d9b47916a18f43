// A misbehaving C++ plugin whose init throws through the C ABI; the host must survive and refuse it.
#include <stdexcept>

#include <ckhost/ckh.h>

namespace {
ckh_status init(const ckh_host_t *) { throw std::runtime_error("boom"); }
const ckh_plugin_t plugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 0, "org.test.throws", "1.0", "Test",
                             "throws", init, nullptr, nullptr, nullptr};
}  // namespace
extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &plugin; }
