# syntax=docker/dockerfile:1
# A static binary on a distroless base, running as a non-root user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context holds no .git: the version and commit come as build
# arguments (docs/operations.md), shown by `meshauth version` and logged at startup.
ARG VERSION=devel
ARG COMMIT=
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/meshauth ./cmd/meshauth \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/meshauth /meshauth
COPY --from=build --chown=nonroot:nonroot /out/data /data
# Every interface inside the container, whatever APP_ENV says: development
# alone would mean loopback, which no published port reaches.
ENV DATA_DIR=/data PORT=4000 LISTEN_ADDR=0.0.0.0
EXPOSE 4000
USER nonroot:nonroot
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/meshauth", "healthcheck"]
ENTRYPOINT ["/meshauth"]
