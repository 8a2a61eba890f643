/// Lowercase hexadecimal text of bytes, built by hand: it is on the commit path of every blob and in every
/// signed S3 request, where a formatter per byte would cost more than the hashing.
public enum Hex {
    public static func lowercase(_ bytes: some Sequence<UInt8>) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `count` random bytes from the system's secure generator, as lowercase hex.
    public static func random(bytes count: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        return lowercase((0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)
}
