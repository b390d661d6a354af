module github.com/redraft/leader

go 1.26

require (
	github.com/gomodule/redigo v1.9.3 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	go.uber.org/goleak v1.3.0 // indirect
)
