import HTTPTypes

extension HTTPField.Name {
    // These literals are valid header names, so the force-unwraps cannot fail.
    static let dockerContentDigest = HTTPField.Name("Docker-Content-Digest")!
    static let dockerUploadUUID = HTTPField.Name("Docker-Upload-UUID")!
    static let dockerAPIVersion = HTTPField.Name("Docker-Distribution-API-Version")!
    static let ociSubject = HTTPField.Name("OCI-Subject")!
    static let ociFiltersApplied = HTTPField.Name("OCI-Filters-Applied")!
    static let link = HTTPField.Name("Link")!
    static let ociChunkMinLength = HTTPField.Name("OCI-Chunk-Min-Length")!
}
