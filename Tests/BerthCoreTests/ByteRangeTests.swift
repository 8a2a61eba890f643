import BerthCore
import Testing

@Suite("ByteRange")
struct ByteRangeTests {
    typealias Selection = ByteRange.Selection

    static let selectCases: [(header: String?, size: Int64, expected: Selection)] = [
        // Single ranges
        ("bytes=0-0", 10, .ranges([0...0])),
        ("bytes=0-", 10, .ranges([0...9])),
        ("bytes=3-7", 10, .ranges([3...7])),
        ("bytes=9-9", 10, .ranges([9...9])),
        ("bytes=9-", 10, .ranges([9...9])),
        ("bytes=-5", 10, .ranges([5...9])),
        ("bytes=-1", 10, .ranges([9...9])),
        ("bytes=-10", 10, .ranges([0...9])),
        ("bytes=-50", 10, .ranges([0...9])),
        ("bytes=-5", 3, .ranges([0...2])),
        // End beyond the size is clamped
        ("bytes=2-100", 10, .ranges([2...9])),
        ("bytes=0-9223372036854775807", 10, .ranges([0...9])),
        // Unsatisfiable
        ("bytes=-0", 10, .unsatisfiable),
        ("bytes=10-", 10, .unsatisfiable),
        ("bytes=10-20", 10, .unsatisfiable),
        ("bytes=11-11", 10, .unsatisfiable),
        ("bytes=20-30,40-", 10, .unsatisfiable),
        ("bytes=0-", 0, .unsatisfiable),
        ("bytes=0-0", 0, .unsatisfiable),
        ("bytes=-5", 0, .unsatisfiable),
        // Several ranges, in the order asked; unsatisfiable parts are dropped
        ("bytes=0-1,4-5,-2", 10, .ranges([0...1, 4...5, 8...9])),
        ("bytes=0-1, 20-30", 10, .ranges([0...1])),
        ("bytes=-0,0-1", 10, .ranges([0...1])),
        ("bytes=5-,0-0", 10, .ranges([5...9, 0...0])),
        ("bytes= 0-1 , 3-4 ", 10, .ranges([0...1, 3...4])),
        // Case and blanks around the value
        ("BYTES=0-0", 10, .ranges([0...0])),
        ("  bytes=1-2\t", 10, .ranges([1...2])),
        // Malformed: served in full
        (nil, 10, .full),
        ("bytes=a-b", 10, .full),
        ("items=0-1", 10, .full),
        ("bytes=5-1", 10, .full),
        ("bytes=", 10, .full),
        ("bytes=5", 10, .full),
        ("bytes=0-1,", 10, .full),
        ("bytes=0-1,a-b", 10, .full),
        ("bytes=--1", 10, .full),
        ("bytes=-1-2", 10, .full),
        ("bytes=-", 10, .full),
        ("bytes 0-1", 10, .full),
        ("0-1", 10, .full),
        ("", 10, .full),
        ("bytes=-99999999999999999999", 10, .full),
        (nil, 0, .full),
        ("bytes=a-b", 0, .full),
    ]

    @Test("select", arguments: selectCases)
    func select(_ c: (header: String?, size: Int64, expected: Selection)) {
        #expect(ByteRange.select(c.header, size: c.size) == c.expected)
    }

    @Test("at most 64 ranges are honoured")
    func maxRanges() {
        #expect(ByteRange.maxRanges == 64)
        let specs = (0..<64).map { "\($0)-\($0)" }
        #expect(ByteRange.select("bytes=" + specs.joined(separator: ","), size: 100) == .ranges((0..<64).map { Int64($0)...Int64($0) }))
        let tooMany = specs + ["64-64"]
        #expect(ByteRange.select("bytes=" + tooMany.joined(separator: ","), size: 100) == .full)
    }

    static let uploadRangeCases: [(header: String, expected: ClosedRange<Int64>?)] = [
        ("0-99", 0...99),
        ("bytes 0-99", 0...99),
        ("bytes=0-99", 0...99),
        ("0-99/100", 0...99),
        ("bytes 0-99/100", 0...99),
        ("bytes 100-199/*", 100...199),
        ("Bytes 5-9", 5...9),
        ("100-100", 100...100),
        (" 0-0 ", 0...0),
        // Malformed
        ("", nil),
        ("-", nil),
        ("0-", nil),
        ("-99", nil),
        ("99-0", nil),
        ("a-b", nil),
        ("0-99-100", nil),
        ("-1-5", nil),
        ("bytes */100", nil),
        ("bytes", nil),
        ("0 - 99", nil),
        ("0-99999999999999999999", nil),
    ]

    @Test("parseUploadContentRange", arguments: uploadRangeCases)
    func uploadContentRange(_ c: (header: String, expected: ClosedRange<Int64>?)) {
        #expect(ByteRange.parseUploadContentRange(c.header) == c.expected)
    }
}
