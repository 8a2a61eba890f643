@testable import BerthServer
import Foundation
import Testing

@Suite("Date header of the extra listeners")
struct HTTPDateHeaderTests {
    @Test func formatsIMFFixdate() {
        // RFC 9110 §5.6.7's example, the epoch, and a leap day with single-digit fields.
        #expect(HTTPDateHeader.format(secondsSince1970: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDateHeader.format(secondsSince1970: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDateHeader.format(secondsSince1970: 1_709_168_645) == "Thu, 29 Feb 2024 01:04:05 GMT")
    }

    @Test func currentIsNow() throws {
        let header = HTTPDateHeader()
        let parser = DateFormatter()
        parser.locale = Locale(identifier: "en_US_POSIX")
        parser.timeZone = TimeZone(identifier: "GMT")
        parser.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let parsed = try #require(parser.date(from: header.current))
        #expect(abs(parsed.timeIntervalSinceNow) < 5)
    }
}
