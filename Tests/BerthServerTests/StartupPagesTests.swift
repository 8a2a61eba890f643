@testable import BerthServer
import Testing

@Suite("Start-up pages")
struct StartupPagesTests {
    private let smaps = """
        55d0a0000000-55d0a3400000 r-xp 00000000 fe:01 1234 /opt/berth/bin/berth
        Size:              53248 kB
        Rss:               25488 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me
        55d0a3401000-55d0a3563000 r--p 034a7000 fe:01 1234 /opt/berth/bin/berth
        Rss:                1416 kB
        Anonymous:          1416 kB
        55d0a3563000-55d0a5b32000 rw-p 03609000 fe:01 1234 /opt/berth/bin/berth
        Rss:                3768 kB
        Anonymous:           120 kB
        7f0000000000-7f0000100000 r-xp 00000000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
        Rss:                1136 kB
        Anonymous:             0 kB
        7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
        Rss:                 288 kB
        Anonymous:           288 kB
        """

    @Test func parsesMappingsAndTheirResidentAndCopiedSizes() {
        let mappings = StartupPages.parse(smaps: smaps)
        #expect(mappings.count == 5)
        #expect(mappings[0] == .init(start: 0x55d0_a000_0000, end: 0x55d0_a340_0000, permissions: "r-xp",
                                     path: "/opt/berth/bin/berth", residentKiB: 25488, anonymousKiB: 0))
        #expect(mappings[1].anonymousKiB == 1416)
        #expect(mappings[4].path == "")
    }

    /// Only the executable's never-written, read-only mappings: not the relocated read-only data (its pages are
    /// private copies that dropping would lose), not writable data, not libraries.
    @Test func releasesOnlyTheExecutablesUnwrittenReadOnlyMappings() {
        let picked = StartupPages.releasable(StartupPages.parse(smaps: smaps), executable: "/opt/berth/bin/berth")
        #expect(picked.map(\.permissions) == ["r-xp"])
        #expect(picked.first?.residentKiB == 25488)
    }

    /// In this very process (the test executable): its resident code pages are dropped, and the code runs on
    /// (the pages map back on use).
    @Test func codeKeepsRunningAfterTheRelease() {
        #if os(Linux)
        #expect(StartupPages.release() > 0)
        #endif
        #expect(StartupPages.parse(smaps: smaps).count == 5)
    }
}
