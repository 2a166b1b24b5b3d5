# taskqueue: one static binary (web app embedded) on a small base.
#
#   docker build -t taskqueue .
#   docker run -p 8080:8080 taskqueue            # embedded SQLite in /data
#
# Build stage: CGO off (modernc.org/sqlite is pure Go), so the binary runs
# on any base. The module download is its own layer, cached while only
# sources change.
FROM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/taskqueue ./cmd/taskqueue

# Run stage: Alpine for its busybox wget, which the HEALTHCHECK uses (the
# binary has no healthcheck command; a distroless base would need one).
# The service runs as an unprivileged user; its only writable place is
# /data (the SQLite file and the dev JWT secret when no database is given).
FROM alpine:3.21
RUN apk add --no-cache ca-certificates tzdata \
    && addgroup -S -g 10001 taskqueue \
    && adduser -S -D -H -u 10001 -G taskqueue taskqueue \
    && mkdir /data && chown taskqueue:taskqueue /data
COPY --from=build /out/taskqueue /usr/local/bin/taskqueue
USER 10001:10001
WORKDIR /data
ENV TASKQUEUE_ADDR=:8080 \
    TASKQUEUE_DATA_DIR=/data \
    TASKQUEUE_LOG_FORMAT=json
VOLUME /data
EXPOSE 8080
# With TLS in the binary (TASKQUEUE_TLS_CERT/KEY, README "TLS") /healthz is
# HTTPS only: override this check, e.g. in compose with
#   wget -q --no-check-certificate -O /dev/null https://127.0.0.1:8080/healthz
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/taskqueue"]
CMD ["serve"]
