module github.com/probekit/probekit/tcpexpose

go 1.26.0

require github.com/probekit/probekit/shared v0.0.0

replace github.com/probekit/probekit/shared => ../shared
