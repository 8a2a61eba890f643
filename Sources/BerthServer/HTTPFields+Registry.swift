import HTTPTypes

/// Header names of the distribution API and of proxies.
extension HTTPField.Name {
    // These literals are valid header names, so the force-unwraps cannot fail.
    public static let dockerContentDigest = HTTPField.Name("Docker-Content-Digest")!
    public static let dockerUploadUUID = HTTPField.Name("Docker-Upload-UUID")!
    public static let dockerAPIVersion = HTTPField.Name("Docker-Distribution-API-Version")!
    public static let ociSubject = HTTPField.Name("OCI-Subject")!
    public static let ociFiltersApplied = HTTPField.Name("OCI-Filters-Applied")!
    public static let link = HTTPField.Name("Link")!
    public static let ociChunkMinLength = HTTPField.Name("OCI-Chunk-Min-Length")!
}
