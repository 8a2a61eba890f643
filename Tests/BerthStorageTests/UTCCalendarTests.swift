@testable import BerthStorageS3
import Testing

@Suite("UTCCalendar")
struct UTCCalendarTests {
    @Test("days → date → days is the identity, across leap days and centuries")
    func roundTrip() {
        for days in stride(from: Int64(-800_000), through: 800_000, by: 97) {
            let date = UTCCalendar.date(fromDays: days)
            #expect(UTCCalendar.days(year: date.year, month: date.month, day: date.day) == days)
        }
        #expect(UTCCalendar.days(year: 2000, month: 2, day: 29) == 11_016)
        #expect(S3Connection.epochSeconds("2026-11-29T07:35:42.000Z") == 1_795_937_742)
    }
}
