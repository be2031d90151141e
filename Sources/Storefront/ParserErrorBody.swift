import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Gives the bare `400 Bad Request` that the HTTP server sends for a request it cannot
/// parse (a header section over its 80 KiB limit — a 100 KB cookie — or bytes that are not
/// HTTP/1.1) the same JSON body as every other error of the storefront. Responses that
/// carry a body of their own pass untouched.
final class ParserErrorBody: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let message = "the request could not be read: its header section is over 80 KiB (a huge cookie?) or it is not HTTP/1.1"
    private var body: ByteBuffer?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head)
        where head.status == .badRequest && head.headerFields[.contentLength] == "0" && head.headerFields[.contentType] == nil:
            let body = ByteBuffer(bytes: StoreError.body(Self.message))
            head.headerFields[.contentType] = "application/json; charset=utf-8"
            head.headerFields[.contentLength] = String(body.readableBytes)
            self.body = body
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end(let trailers) where body != nil:
            context.write(wrapOutboundOut(.body(body!)), promise: nil)
            body = nil
            context.write(wrapOutboundOut(.end(trailers)), promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }
}
