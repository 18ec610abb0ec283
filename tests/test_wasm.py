"""The `.wasm` Envoy loads exports exactly what the filter uses (make wasm trims the rest): Envoy
enters the VM for every exported callback on every request, so an export the filter does not
need costs every request. Every integration test runs this same file."""
import harness

# What tools/wasm-trim keeps, and why each is needed, is written there.
EXPORTS = {
    "memory", "_initialize", "proxy_abi_version_0_2_1", "proxy_on_vm_start", "proxy_on_configure",
    "proxy_on_context_create", "proxy_on_delete", "proxy_on_request_headers", "proxy_on_request_body",
    "proxy_on_memory_allocate",
}


def leb128(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def exports(path) -> set[str]:
    """The names in a wasm module's export section."""
    data = path.read_bytes()
    assert data[:4] == b"\0asm", path
    names, i = set(), 8
    while i < len(data):
        section, i = data[i], i + 1
        size, i = leb128(data, i)
        if section == 7:
            count, j = leb128(data, i)
            for _ in range(count):
                length, j = leb128(data, j)
                names.add(data[j:j + length].decode())
                j += length + 1  # the kind
                _, j = leb128(data, j)  # the index
        i += size
    return names


def test_the_filter_exports_only_what_it_uses():
    assert exports(harness.require_wasm()) == EXPORTS
