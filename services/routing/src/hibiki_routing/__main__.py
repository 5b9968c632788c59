from hibiki_routing.entrypoints.main import main

main()
