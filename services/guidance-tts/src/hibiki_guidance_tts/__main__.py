from hibiki_guidance_tts.entrypoints.main import main

main()
