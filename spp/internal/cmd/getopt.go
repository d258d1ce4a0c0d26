package cmd

import "strings"

// optString is the original's getopt(3) option string: letters followed by ':' take a value.
const optString = "a:A:f:F:i:I:r:R:s:n:N:o:d:v:l:g:t:G:#:cmpb"

// longWithValue lists the long options whose value may follow as the next argument.
var longWithValue = map[string]bool{"log-level": true, "log-format": true, "format": true, "port": true}

// Getopt rewrites the original's getopt-style command line into the form urfave/cli parses
// unambiguously: clustered switches ("-cp") become separate flags, and every option value —
// attached ("-o100", "-#4095") or in the next argument, even when it starts with a dash
// ("-o -100") — becomes "-o=value". Long options pass through; "--" ends option processing.
// Unknown letters are passed on alone so the parser reports them.
func Getopt(args []string) []string {
	if len(args) == 0 {
		return args
	}
	out := []string{args[0]}
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(out, args[i:]...)
		case strings.HasPrefix(a, "--"):
			out = append(out, a)
			if name := a[2:]; !strings.Contains(name, "=") && longWithValue[name] && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		case len(a) < 2 || a[0] != '-':
			out = append(out, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			k := strings.IndexByte(optString, c)
			if c == ':' || k < 0 {
				out = append(out, "-"+a[j:j+1])
				continue
			}
			if k+1 < len(optString) && optString[k+1] == ':' {
				switch {
				case j+1 < len(a):
					out = append(out, "-"+string(c)+"="+a[j+1:])
				case i+1 < len(args):
					i++
					out = append(out, "-"+string(c)+"="+args[i])
				default:
					out = append(out, "-"+string(c)) // missing value: the parser says so
				}
				break
			}
			out = append(out, "-"+string(c))
		}
	}
	return out
}
