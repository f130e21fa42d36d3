// The franz-go client program that broker/tests/e2e_go.rs runs against the
// broker; scripts/e2e-deps.sh builds it into $HOME/.cache/strom.

module strom.example/e2e

go 1.26.0

require (
	github.com/twmb/franz-go v1.22.3
	github.com/twmb/franz-go/pkg/kadm v1.20.0
	github.com/twmb/franz-go/pkg/kmsg v1.15.1
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
)
