module github.com/tcpeng/tcpeng

go 1.26
