module cachesvc.dev/client

go 1.19
