package netlab

func natChecks() []Check       { return nil }
func middleboxChecks() []Check { return nil }
