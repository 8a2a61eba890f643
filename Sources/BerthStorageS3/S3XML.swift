/// Just enough XML for S3's answers, whose shape is fixed and shallow: find elements by name and read their text.
///
/// The elements looked for never nest inside an element of the same name (`Contents`, `CommonPrefixes`,
/// `Error`…), so an element ends at the first matching end tag. Attributes are skipped; `<Name/>` is empty.
/// S3 uses no CDATA, so text is plain character data with the five named entities and numeric references.
enum S3XML {
    /// The inner XML of each `<name>…</name>` in `xml`, in document order.
    static func elements(_ name: String, in xml: Substring) -> [Substring] {
        var found: [Substring] = []
        let open = "<" + name
        let close = "</" + name + ">"
        var rest = xml[...]
        while let start = rest.firstRange(of: open) {
            // The tag name must end here: `<Upload` is not `<UploadId>`.
            guard let next = rest[start.upperBound...].first else { break }
            if next == ">" || next == " " || next == "\t" || next == "\n" || next == "\r" || next == "/" {
                guard let tagEnd = rest[start.upperBound...].firstIndex(of: ">") else { break }
                if rest[rest.index(before: tagEnd)] == "/" {
                    found.append(rest[tagEnd..<tagEnd])
                    rest = rest[rest.index(after: tagEnd)...]
                    continue
                }
                let contentStart = rest.index(after: tagEnd)
                guard let end = rest[contentStart...].firstRange(of: close) else { break }
                found.append(rest[contentStart..<end.lowerBound])
                rest = rest[end.upperBound...]
            } else {
                rest = rest[start.upperBound...]
            }
        }
        return found
    }

    /// The decoded text of the first `<name>` element, or nil when there is none.
    static func text(_ name: String, in xml: Substring) -> String? {
        elements(name, in: xml).first.map(decode)
    }

    /// Character data with its entity and character references resolved.
    static func decode(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        var out = ""
        var rest = text[...]
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semicolon = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semicolon]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let scalar: UInt32? =
                    entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16)
                    : entity.hasPrefix("#") ? UInt32(entity.dropFirst(), radix: 10) : nil
                if let scalar, let unicode = Unicode.Scalar(scalar) {
                    out.unicodeScalars.append(unicode)
                } else {
                    out += rest[amp...semicolon]
                }
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        out += rest
        return out
    }

    /// Text escaped for an element's content.
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.append(character)
            }
        }
        return out
    }
}
